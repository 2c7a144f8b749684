//! loom tests (filled below)
