//! The crate's folders are floors (ARCHITECTURE.md): a file may use what lies on its own floor or below,
//! never above, and no files import each other in a circle. This reads every `crate::…` path in
//! crate/ (use lines and inline paths alike) and fails naming the file and line of each import that runs
//! up, and each cycle. It also keeps files and functions to a size a reader takes in at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom to top. `bin/` sits above them all and is not listed: it reaches the crate as `veer::`.
const FLOORS: [&str; 9] = ["base", "io", "kernels", "nn", "models", "steering", "tasks", "apps", "wasm"];
/// Lines of a file (its test module aside), and of one function.
const MAX_FILE_LINES: usize = 450;
const MAX_FN_LINES: usize = 80;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crate")
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The crate-relative file (`models/bert/mod.rs`) and its lines, the test module cut off.
fn files() -> Vec<(String, Vec<String>)> {
    let mut paths = Vec::new();
    sources(&root(), &mut paths);
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            let end = lines.iter().position(|l| l.starts_with("#[cfg(test)]") || l.starts_with("#[cfg(all(test")).unwrap_or(lines.len());
            (p.strip_prefix(root()).unwrap().to_string_lossy().replace('\\', "/"), lines[..end].to_vec())
        })
        .collect()
}

fn floor(file: &str) -> Option<usize> {
    FLOORS.iter().position(|f| file.split('/').next() == Some(*f))
}

/// The code of a line without its comment and string literals (a doc comment naming `crate::x` is not
/// an import).
fn code(line: &str) -> String {
    let mut out = String::new();
    let (mut in_str, mut prev) = (false, ' ');
    for c in line.chars() {
        if !in_str && c == '/' && prev == '/' {
            out.pop();
            break;
        }
        if c == '"' && prev != '\\' {
            in_str = !in_str;
        } else if !in_str {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// Each `crate::a::b::…` path on a line, as its segments.
fn crate_paths(line: &str) -> Vec<Vec<String>> {
    let code = code(line);
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        if code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        let path: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        out.push(path.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect());
    }
    out
}

/// The file a path's module lives in: its longest prefix that is a file.
fn module_file(segments: &[String], known: &BTreeSet<String>) -> Option<String> {
    (1..=segments.len()).rev().find_map(|n| {
        let dir = segments[..n].join("/");
        [format!("{dir}.rs"), format!("{dir}/mod.rs")].into_iter().find(|f| known.contains(f))
    })
}

#[test]
fn imports_point_down_and_never_in_a_circle() {
    let files = files();
    let known: BTreeSet<String> = files.iter().map(|(f, _)| f.clone()).collect();
    let mut upward = Vec::new();
    let mut edges: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for (file, lines) in &files {
        let Some(own) = floor(file) else { continue }; // lib.rs, bin/
        for (n, line) in lines.iter().enumerate() {
            for path in crate_paths(line) {
                let Some(target) = path.first().and_then(|f| FLOORS.iter().position(|x| x == f)) else { continue };
                if target > own {
                    upward.push(format!("crate/{file}:{}: imports crate::{} from floor {} `{}` above its own floor {own} `{}`", n + 1, path.join("::"), target, FLOORS[target], FLOORS[own]));
                }
                if let Some(to) = module_file(&path, &known).filter(|t| t != file) {
                    edges.entry(file.clone()).or_default().entry(to).or_insert(n + 1);
                }
            }
        }
    }
    assert!(upward.is_empty(), "imports from a higher floor:\n{}", upward.join("\n"));

    // Depth-first search for a back edge; the cycle is read off the stack.
    fn visit(f: &str, edges: &BTreeMap<String, BTreeMap<String, usize>>, state: &mut BTreeMap<String, u8>, stack: &mut Vec<String>, cycles: &mut Vec<String>) {
        state.insert(f.to_string(), 1);
        stack.push(f.to_string());
        for (to, line) in edges.get(f).into_iter().flatten() {
            match state.get(to.as_str()) {
                Some(1) => {
                    let start = stack.iter().position(|s| s == to).unwrap();
                    cycles.push(format!("{} → crate/{to} (crate/{f}:{line})", stack[start..].iter().map(|s| format!("crate/{s}")).collect::<Vec<_>>().join(" → ")));
                }
                None => visit(to, edges, state, stack, cycles),
                _ => {}
            }
        }
        stack.pop();
        state.insert(f.to_string(), 2);
    }
    let (mut state, mut cycles) = (BTreeMap::new(), Vec::new());
    for f in edges.keys() {
        if !state.contains_key(f.as_str()) {
            visit(f, &edges, &mut state, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "files that import each other in a circle:\n{}", cycles.join("\n"));
}

#[test]
fn files_and_functions_stay_short() {
    let mut long = Vec::new();
    for (file, lines) in files() {
        if lines.len() > MAX_FILE_LINES {
            long.push(format!("crate/{file}: {} lines (test module aside); at most {MAX_FILE_LINES}: split it along its seams", lines.len()));
        }
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let signature = ["fn ", "pub fn ", "pub(crate) fn ", "async fn ", "pub async fn ", "pub(crate) async fn ", "unsafe fn ", "pub unsafe fn "];
            if !signature.iter().any(|s| trimmed.starts_with(s)) || line.trim_end().ends_with(';') || line.trim_end().ends_with('}') {
                continue;
            }
            let close = format!("{}}}", " ".repeat(indent));
            let Some(end) = lines[i..].iter().position(|l| l.trim_end() == close) else { continue };
            if end + 1 > MAX_FN_LINES {
                let name: String = trimmed.split("fn ").nth(1).unwrap_or("").chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                long.push(format!("crate/{file}:{}: fn {name} is {} lines; at most {MAX_FN_LINES}", i + 1, end + 1));
            }
        }
    }
    assert!(long.is_empty(), "too long to read at once:\n{}", long.join("\n"));
}

/// The checks above must be able to fail: an upward path and a cycle are found in made-up lines.
#[test]
fn the_checks_see_what_they_look_for() {
    assert_eq!(crate_paths("use crate::tasks::encode::Encoder; // crate::wasm in a comment"), vec![vec!["tasks", "encode", "Encoder"]]);
    assert!(crate_paths(r#"let s = "crate::apps"; let t = veer_crate::x;"#).is_empty());
    assert_eq!(crate_paths("x = crate::base::math::argmax(&v) + crate::io::gguf::f(1);").len(), 2);
    let known: BTreeSet<String> = ["models/bert/mod.rs", "models/bert/head_file.rs", "base/options.rs"].map(String::from).into();
    let seg = |p: &str| p.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(module_file(&seg("models::bert::head_file::write"), &known).as_deref(), Some("models/bert/head_file.rs"));
    assert_eq!(module_file(&seg("models::bert::Bert"), &known).as_deref(), Some("models/bert/mod.rs"));
    assert_eq!(floor("wasm/mod.rs"), Some(8));
    assert_eq!(floor("bin/veer.rs"), None);
}
