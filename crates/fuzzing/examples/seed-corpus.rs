//! Writes each fuzz target's seeds into `DIR/<target>/` (default
//! `fuzz/corpus`), where `cargo fuzz run <target>` starts from:
//! `cargo run -p clemmys-fuzzing --example seed-corpus [DIR]`.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("fuzz/corpus"), PathBuf::from);
    for target in clemmys_fuzzing::TARGETS {
        let dir = root.join(target.name);
        std::fs::create_dir_all(&dir)?;
        for (index, seed) in target.seeds().iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{index}")), seed)?;
        }
        println!(
            "{}: {} seeds in {}",
            target.name,
            target.seeds().len(),
            dir.display()
        );
    }
    Ok(())
}
