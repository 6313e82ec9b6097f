"""LLM-in-the-loop authoring: a model writes TL, tlc checks it and hands back the diagnostics.

Nothing a model returns is executed: a reply is searched for one TL block, which is parsed
and checked like any plan, or rejected with the reason. The loop is `loop.generate`; the
prompts are versioned files under prompts/, filled from the language and arch tables.
"""
