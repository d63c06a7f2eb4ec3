//! Package names: PEP 508 grammar check and PEP 503 canonical form.
