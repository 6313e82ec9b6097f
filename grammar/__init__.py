"""The LLM-TL grammar (tl.lark) and the parser that turns text into tlc.ast."""
