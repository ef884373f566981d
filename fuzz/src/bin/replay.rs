//! Runs the fuzz checks without libFuzzer: every file of `corpus/<target>/`, then
//! `--iters N` inputs made by mutating corpus entries with a seeded xorshift RNG.
//!
//! ```text
//! cargo run --release --bin replay -- [--iters N] [--seed S] [target ...]
//! ```
//!
//! A failed check panics; the panic hook prints the input (hex) that caused it first.

use std::cell::RefCell;
use std::path::Path;
use std::time::Instant;

thread_local! {
    static CURRENT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens the decoders care about, spliced in by the mutator.
const TOKENS: [&[u8]; 12] = [
    b"\r\n",
    b"\n",
    b"\r",
    b":",
    b",",
    b"0",
    b"9",
    b"99999:",
    b"aba",
    b"R",
    b"L",
    b"\x00\x00\x00",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                input.insert(i, rng.next() as u8);
            }
            2 if len > 2 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                input.drain(a..b);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let copy = input[a..b].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, copy);
            }
            4 => {
                let tok = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                input.splice(at..at, tok.iter().copied());
            }
            5 if len > 1 => {
                // The two header bytes steer chunking and limits: change them often.
                let i = rng.below(2);
                input[i] = rng.next() as u8;
            }
            _ => {
                let n = rng.below(32);
                input.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    input.truncate(4096);
}

fn load_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn main() {
    let mut iters: u64 = 100_000;
    let mut seed: u64 = 0x5eed;
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iters" => iters = args.next().and_then(|v| v.parse().ok()).expect("--iters N"),
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed S"),
            _ => names.push(a),
        }
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        CURRENT.with(|c| {
            let hex: String = c.borrow().iter().map(|b| format!("{b:02x}")).collect();
            eprintln!("crashing input ({} bytes): {hex}", c.borrow().len());
        });
        default_hook(info);
    }));
    let corpus_root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, target) in weft_fuzz::TARGETS {
        if !names.is_empty() && !names.iter().any(|n| n == name) {
            continue;
        }
        let corpus = load_corpus(&corpus_root.join(name));
        let started = Instant::now();
        let mut execs: u64 = 0;
        let mut run = |input: &[u8]| {
            CURRENT.with(|c| {
                let mut c = c.borrow_mut();
                c.clear();
                c.extend_from_slice(input);
            });
            target(input);
            execs += 1;
        };
        for input in &corpus {
            run(input);
        }
        let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
        let mut input = Vec::new();
        for _ in 0..iters {
            // Mostly keep mutating the same input (a random walk), sometimes restart.
            if input.is_empty() || rng.below(16) == 0 {
                input = if corpus.is_empty() {
                    vec![0, 0]
                } else {
                    corpus[rng.below(corpus.len())].clone()
                };
            }
            mutate(&mut rng, &mut input);
            run(&input);
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{name}: {execs} executions ({} corpus + {iters} mutated), no crash, {secs:.1} s ({:.0} exec/s)",
            corpus.len(),
            execs as f64 / secs
        );
    }
}
