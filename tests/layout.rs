//! The shape of the house, checked (issue 15): imports run one way, and no source file grows
//! past `MAX_LINES` lines before its `#[cfg(test)]` module.
//!
//! It reads `src/` as text: it never builds or runs anything, and it knows Rust only as far as
//! paths go (`crate::x`, `super::x`, `use crate::{a, b::c}` groups), with comments and string
//! literals blanked first. Test modules are left out of the import check: a test may reach for
//! a fixture anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// A file over this many lines before its tests holds two ideas: split it.
const MAX_LINES: usize = 600;

/// A module's path from the crate root: `["event_loop", "drive"]`.
type ModulePath = Vec<String>;

/// One `.rs` file of `src/`: its path (`src/…`, with `/`), its module and its text.
struct Source {
    file: String,
    module: ModulePath,
    text: String,
}

/// Every file of `src/` but the crate roots (`lib.rs`, `main.rs`), which are no module's peer.
fn sources() -> Vec<Source> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs = vec![root.join("src")];
    while let Some(dir) = dirs.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut sources = Vec::new();
    for path in files {
        let rel = path.strip_prefix(root).expect("under the crate");
        let file = rel.to_string_lossy().replace('\\', "/");
        let inner = file.trim_start_matches("src/").trim_end_matches(".rs");
        if inner == "lib" || inner == "main" {
            continue;
        }
        let mut module: ModulePath = inner.split('/').map(str::to_string).collect();
        if module.last().is_some_and(|last| last == "mod") {
            module.pop();
        }
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {file}: {e}"));
        sources.push(Source { file, module, text });
    }
    sources
}

/// The index of the line that opens the file's `#[cfg(test)]` module (`#[cfg(test)]` followed,
/// past any other attribute, by a `mod`), or the number of lines when it has none: the lines
/// before it are the file's code.
fn code_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "#[cfg(test)]" {
            continue;
        }
        let item = lines[i + 1..]
            .iter()
            .map(|line| line.trim())
            .find(|line| !line.is_empty() && !line.starts_with("#["));
        if item.is_some_and(|item| {
            ["mod ", "pub mod ", "pub(crate) mod ", "pub(super) mod "]
                .iter()
                .any(|start| item.starts_with(start))
        }) {
            return i;
        }
    }
    lines.len()
}

/// `text` with comments, string literals and char literals blanked (newlines kept, so offsets
/// still find their line): a path in a doc comment or a message is no import.
fn blank(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            rest = &rest[end..];
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            let mut end = 0;
            while end < rest.len() {
                if rest[end..].starts_with("/*") {
                    depth += 1;
                    end += 2;
                } else if rest[end..].starts_with("*/") {
                    depth -= 1;
                    end += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    end += rest[end..].chars().next().map_or(1, char::len_utf8);
                }
            }
            keep_newlines(&rest[..end], &mut out);
            rest = &rest[end..];
        } else if let Some(len) = raw_string(rest, out.chars().last()) {
            keep_newlines(&rest[..len], &mut out);
            rest = &rest[len..];
        } else if c == '"' {
            let mut end = 1;
            while end < rest.len() && !rest[end..].starts_with('"') {
                if rest[end..].starts_with('\\') {
                    end += 1;
                }
                end += rest[end..].chars().next().map_or(1, char::len_utf8);
            }
            keep_newlines(&rest[..(end + 1).min(rest.len())], &mut out);
            rest = &rest[(end + 1).min(rest.len())..];
        } else if c == '\'' {
            // A char literal ('x', '\n', '→'), else a lifetime ('a), which is kept.
            let after = &rest[1..];
            let len = if let Some(escaped) = after.strip_prefix('\\') {
                escaped.find('\'').map(|end| end + 3)
            } else {
                after
                    .chars()
                    .next()
                    .filter(|_| after.chars().nth(1) == Some('\''))
                    .map(|c| c.len_utf8() + 2)
            };
            match len {
                Some(len) => {
                    out.push(' ');
                    rest = &rest[len..];
                }
                None => {
                    out.push('\'');
                    rest = after;
                }
            }
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The length of a raw string literal (`r"…"`, `r#"…"#`) at the start of `rest`, if one is.
fn raw_string(rest: &str, before: Option<char>) -> Option<usize> {
    if !rest.starts_with('r') || before.is_some_and(is_ident) {
        return None;
    }
    let hashes = rest[1..].chars().take_while(|&c| c == '#').count();
    if !rest[1 + hashes..].starts_with('"') {
        return None;
    }
    let close = format!("\"{}", "#".repeat(hashes));
    let body = 2 + hashes;
    let end = rest[body..].find(&close)?;
    Some(body + end + close.len())
}

fn keep_newlines(blanked: &str, out: &mut String) {
    out.push(' ');
    out.extend(blanked.chars().filter(|&c| c == '\n'));
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths of a use tree at the start of `s` (`a::b`, `a::{b, c::d}`, `*`, `self`), each as
/// its segments; `at` moves past it.
fn use_tree(s: &str, at: &mut usize) -> Vec<Vec<String>> {
    skip_space(s, at);
    if s[*at..].starts_with('{') {
        *at += 1;
        let mut paths = Vec::new();
        loop {
            skip_space(s, at);
            if *at >= s.len() || s[*at..].starts_with('}') {
                *at += 1;
                return paths;
            }
            paths.extend(use_tree(s, at));
            skip_space(s, at);
            if s[*at..].starts_with(',') {
                *at += 1;
            } else if !s[*at..].starts_with('}') {
                // Not a use tree after all (a generic, an expression): stop here.
                return paths;
            }
        }
    }
    let len = s[*at..].chars().take_while(|&c| is_ident(c)).count();
    let ident = &s[*at..*at + len];
    *at += len;
    if s[*at..].starts_with("::") {
        *at += 2;
        let mut paths = use_tree(s, at);
        if ident != "self" {
            for path in &mut paths {
                path.insert(0, ident.to_string());
            }
        }
        return paths;
    }
    if s[*at..].starts_with('*') {
        *at += 1;
    }
    // `Y as Z` imports Y.
    let mut after = *at;
    skip_space(s, &mut after);
    if s[after..].starts_with("as ") {
        *at = after + "as ".len();
        skip_space(s, at);
        *at += s[*at..].chars().take_while(|&c| is_ident(c)).count();
    }
    match ident {
        "" | "self" => vec![Vec::new()],
        _ => vec![vec![ident.to_string()]],
    }
}

fn skip_space(s: &str, at: &mut usize) {
    *at += s[*at..].chars().take_while(|c| c.is_whitespace()).count();
}

/// Every module `code` (of `module`) names through `crate::` or `super::`, resolved to the
/// deepest module that exists, with the line it is named on.
fn imports(
    code: &str,
    module: &[String],
    known: &BTreeSet<ModulePath>,
) -> Vec<(ModulePath, usize)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = code[from..].find(['c', 's']) {
        let start = from + offset;
        from = start + 1;
        let rest = &code[start..];
        let (mut base, mut at) = if rest.starts_with("crate::") {
            (Vec::new(), start + "crate::".len())
        } else if rest.starts_with("super::") {
            (module.to_vec(), start)
        } else {
            continue;
        };
        if code[..start]
            .chars()
            .last()
            .is_some_and(|c| is_ident(c) || c == '$')
        {
            continue;
        }
        // `super` is the parent of the file's module; each one more goes one up.
        while code[at..].starts_with("super::") {
            base.pop();
            at += "super::".len();
        }
        from = at;
        let line = code[..start].matches('\n').count() + 1;
        for path in use_tree(code, &mut at) {
            let mut full = base.clone();
            full.extend(path);
            while !full.is_empty() && !known.contains(&full) {
                full.pop();
            }
            found.push((full, line));
        }
    }
    found
}

/// `a` imports `b`: they are siblings (or their ancestors are, at the first segment where they
/// differ), and the edge is between those siblings. A module importing its own parent or child
/// (`super::Protocol`, a `mod.rs` re-exporting its files) is how Rust folders work, not a circle.
fn sibling_edge(a: &[String], b: &[String]) -> Option<(ModulePath, ModulePath)> {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    (common < a.len() && common < b.len()).then(|| (a[..=common].to_vec(), b[..=common].to_vec()))
}

/// Most circles listed at once: fixing those shows the rest.
const MAX_CIRCLES: usize = 20;

/// The circles among `edges`, each once, from its least module: two modules importing each
/// other, or a longer ring. The graph has a few dozen modules, so a search from each is cheap.
fn circles(edges: &BTreeMap<(ModulePath, ModulePath), String>) -> Vec<Vec<ModulePath>> {
    let mut next: BTreeMap<&ModulePath, Vec<&ModulePath>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        next.entry(a).or_default().push(b);
    }
    let mut found = Vec::new();
    'search: for &start in next.keys() {
        // Paths from `start` through modules greater than it, looking for a way back.
        let mut stack = vec![vec![start]];
        while let Some(path) = stack.pop() {
            let last = path[path.len() - 1];
            for &to in next.get(last).into_iter().flatten() {
                if to == start {
                    found.push(path.iter().map(|&m| m.clone()).collect());
                    if found.len() == MAX_CIRCLES {
                        break 'search;
                    }
                } else if to > start && !path.contains(&to) {
                    let mut longer = path.clone();
                    longer.push(to);
                    stack.push(longer);
                }
            }
        }
    }
    // Two modules importing each other first: the plainest to fix.
    found.sort_by_key(Vec::len);
    found
}

#[test]
fn no_two_modules_import_each_other() {
    let sources = sources();
    let known: BTreeSet<ModulePath> = sources.iter().map(|s| s.module.clone()).collect();
    // Who imports whom, and where first.
    let mut edges: BTreeMap<(ModulePath, ModulePath), String> = BTreeMap::new();
    for source in &sources {
        let code: String = source
            .text
            .lines()
            .take(code_lines(&source.text))
            .collect::<Vec<_>>()
            .join("\n");
        for (target, line) in imports(&blank(&code), &source.module, &known) {
            if let Some(edge) = sibling_edge(&source.module, &target) {
                edges
                    .entry(edge)
                    .or_insert_with(|| format!("{}:{line}", source.file));
            }
        }
    }
    assert!(
        edges.keys().any(|(a, _)| a == &["server".to_string()]),
        "the scan found no import of server's: it is broken, not the house"
    );
    let name = |m: &ModulePath| m.join("::");
    let circles: Vec<String> = circles(&edges)
        .iter()
        .map(|circle| {
            let mut steps: Vec<String> = circle
                .iter()
                .zip(circle.iter().cycle().skip(1))
                .map(|(a, b)| format!("{} -> ({})", name(a), edges[&(a.clone(), b.clone())]))
                .collect();
            steps.push(name(&circle[0]));
            steps.join(" ")
        })
        .collect();
    assert!(
        circles.is_empty(),
        "imports must run one way (main -> server -> event_loop -> connection / framing -> \
         config / group / metrics; a constant two modules need goes down to config), but these \
         modules import one another in a circle (each step names where):\n  {}",
        circles.join("\n  ")
    );
}

#[test]
fn no_source_file_is_two_ideas() {
    let mut long = Vec::new();
    for source in sources() {
        let lines = code_lines(&source.text);
        if lines > MAX_LINES {
            long.push(format!("{}: {lines} lines", source.file));
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines before their #[cfg(test)] module; split each by what it holds:\n  {}",
        long.join("\n  ")
    );
}

/// The scanner itself, on the forms it must see and the ones it must not.
#[test]
fn the_scan_finds_paths_in_use_groups_and_code_but_not_in_comments_or_strings() {
    let known: BTreeSet<ModulePath> = [vec!["a"], vec!["b"], vec!["b", "c"], vec!["d"]]
        .into_iter()
        .map(|m| m.into_iter().map(str::to_string).collect())
        .collect();
    let code = "use crate::{a::X, b::{self, c::Y as Z}};\n\
                // crate::d in a comment\n\
                let s = \"crate::d\"; let c = '\"'; let r = r#\"crate::d\"#;\n\
                fn f<'a>() { super::super::super::d::g(); super::super::X; }\n\
                /* crate::d /* nested */ */ _crate::d;\n";
    let module: ModulePath = vec!["b".into(), "c".into(), "e".into()];
    let found: Vec<(String, usize)> = imports(&blank(code), &module, &known)
        .into_iter()
        .map(|(m, line)| (m.join("::"), line))
        .collect();
    assert_eq!(
        found,
        [
            ("a".to_string(), 1),
            ("b".to_string(), 1),
            ("b::c".to_string(), 1),
            ("d".to_string(), 4),
            ("b".to_string(), 4),
        ]
    );
    let lines = "fn a() {}\n#[cfg(test)]\nfn b() {}\n#[cfg(test)]\n#[allow(x)]\nmod tests {}\n";
    assert_eq!(code_lines(lines), 3);
    assert_eq!(
        sibling_edge(
            &["b".into(), "c".into()],
            &["b".into(), "d".into(), "e".into()]
        ),
        Some((
            vec!["b".to_string(), "c".to_string()],
            vec!["b".to_string(), "d".to_string()]
        ))
    );
    assert_eq!(sibling_edge(&["b".into(), "c".into()], &["b".into()]), None);
}
