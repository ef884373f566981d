//! The `loadgen` binary: a thin shell over the library (see `loadgen --help`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(loadgen::main_with_args(&args));
}
