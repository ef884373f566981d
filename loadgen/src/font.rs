//! font stub
