"""Code generation for each target architecture (sm_80 Ampere, sm_75 Turing).

Empty until the backend issues: the package exists so the layout and the installed wheel have
their final shape.
"""
