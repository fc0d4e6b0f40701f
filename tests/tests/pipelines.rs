//! Cross-tool pipelines: the tools composed the way the README shows them.
