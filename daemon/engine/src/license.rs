//! License resolution (PEP 639 expression → legacy field → classifiers) and
//! policy judgement over SPDX expressions.
