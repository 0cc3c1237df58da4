//! `ARCHITECTURE.md` stays true: every path its code map names exists, and every crate's
//! dependencies follow the layer rules it states (its "Layer rules" table).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn architecture() -> String {
    std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md is readable")
}

/// The spans between backticks on a line.
fn backticked(line: &str) -> impl Iterator<Item = &str> {
    line.split('`').skip(1).step_by(2)
}

/// Whether a backticked span names a file or folder (as opposed to a type, a command or a
/// figure): it ends in a known extension or a slash, and has no spaces or calls.
fn is_path(span: &str) -> bool {
    const EXTENSIONS: [&str; 5] = [".rs", ".toml", ".md", ".sh", ".py"];
    let plain = !span.contains([' ', '(', ')', ':', '<', '>', '*', '{', '=', '"']);
    plain && (span.ends_with('/') || EXTENSIONS.iter().any(|e| span.ends_with(e)))
}

#[test]
fn every_path_the_code_map_names_exists() {
    let root = root();
    let mut missing = Vec::new();
    let mut checked = 0;
    // Paths under a crate's heading (`### \`crates/qorch-x\``) are relative to its `src/`
    // (or to the crate itself), and within a bullet that names a folder (`node/`), to that
    // folder too; others to the repository.
    let mut krate: Option<PathBuf> = None;
    let mut folder: Option<String> = None;
    for (n, line) in architecture().lines().enumerate() {
        if line.starts_with("- ") || line.trim().is_empty() {
            folder = None;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            krate = backticked(heading)
                .find(|s| s.starts_with("crates/"))
                .map(|s| root.join(s));
            continue;
        }
        if line.starts_with("## ") {
            krate = None;
        }
        for span in backticked(line).filter(|s| is_path(s)) {
            checked += 1;
            let mut candidates = vec![root.join(span)];
            if let Some(k) = &krate {
                candidates.push(k.join("src").join(span));
                candidates.push(k.join(span));
                if let Some(f) = &folder {
                    candidates.push(k.join("src").join(f).join(span));
                }
            }
            if span.ends_with('/') {
                folder = Some(span.to_owned());
            }
            if !candidates.iter().any(|p| p.exists()) {
                missing.push(format!("line {}: `{span}`", n + 1));
            }
        }
    }
    assert!(
        checked > 50,
        "the code map names only {checked} paths: is the parser broken?"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names paths that do not exist:\n{}",
        missing.join("\n")
    );
}

/// One row of the "Layer rules" table: a crate, the qorch crates it may depend on, and the
/// crates it must never depend on.
struct Rule {
    may: BTreeSet<String>,
    never: BTreeSet<String>,
    /// Its position in the table: a crate may depend only on crates below it.
    row: usize,
}

fn layer_rules() -> BTreeMap<String, Rule> {
    let text = architecture();
    let table = text
        .split("### Layer rules")
        .nth(1)
        .expect("ARCHITECTURE.md has a \"Layer rules\" section");
    let names = |cell: &str| -> BTreeSet<String> { backticked(cell).map(str::to_owned).collect() };
    let mut rules = BTreeMap::new();
    for line in table.lines().skip_while(|l| !l.starts_with('|')) {
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(name) = backticked(cells[1]).next() else {
            continue; // the header and its underline
        };
        let row = rules.len();
        rules.insert(
            name.to_owned(),
            Rule {
                may: names(cells[2]),
                never: names(cells[3]),
                row,
            },
        );
    }
    rules
}

/// The dependencies (normal and build, optional ones included) of a crate's manifest.
fn dependencies(manifest: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(manifest).expect("the manifest is readable");
    let value: toml::Table = text.parse().expect("the manifest is TOML");
    ["dependencies", "build-dependencies"]
        .iter()
        .filter_map(|k| value.get(*k).and_then(toml::Value::as_table))
        .flat_map(|t| t.keys().cloned())
        .collect()
}

#[test]
fn crates_depend_only_on_the_layers_below_them() {
    let rules = layer_rules();
    let crates: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.join("Cargo.toml").exists())
        .collect();
    assert!(crates.len() >= 10, "found only {} crates", crates.len());
    let mut broken = Vec::new();
    for dir in &crates {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some(rule) = rules.get(&name) else {
            broken.push(format!("{name} has no row in the layer rules"));
            continue;
        };
        for dep in dependencies(&dir.join("Cargo.toml")) {
            if dep.starts_with("qorch") {
                if !rule.may.contains(&dep) {
                    broken.push(format!(
                        "{name} depends on {dep}, which its row does not allow"
                    ));
                }
                if rules.get(&dep).is_some_and(|d| d.row <= rule.row) {
                    broken.push(format!("{name} depends on {dep}, which is not below it"));
                }
            }
            if rule.never.contains(&dep) {
                broken.push(format!("{name} depends on {dep}, which its row forbids"));
            }
        }
    }
    for (name, rule) in &rules {
        for dep in &rule.may {
            if !rules.contains_key(dep) {
                broken.push(format!("{name}'s row allows {dep}, which has no row"));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
