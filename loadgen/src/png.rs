//! png stub
