//! loadgen: the benchmark harness for weft and its peers (filled by the loadgen issue).
