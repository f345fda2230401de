//! Sonde's integration tests live in all/.
