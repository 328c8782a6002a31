//! Route normalisation.
