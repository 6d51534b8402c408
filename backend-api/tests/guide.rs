//! `doc/GUIDE.md`, the backend author's guide that `sunrise-backend-dev`
//! installs, cannot go stale: every op of the op set has its row (id, name,
//! as many inputs and outputs as the op takes, its params struct) and its
//! semantics section, and every params struct, status code and table entry
//! of the C header is described.
//!
//! The params struct of each op and the fields of each struct are read from
//! the checked-in header (`tests/header.rs` keeps it current), so a new op,
//! a new struct or a new field fails here until the guide describes it.

use std::path::PathBuf;

use sunrise_backend_api::OpId;

fn read(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn guide() -> String {
    read("doc/GUIDE.md")
}

fn header() -> String {
    read("include/sunrise_backend.h")
}

/// The params struct of `op` as the header's op id line names it (`None`
/// for "no params").
fn params_of(header: &str, op: OpId) -> Option<String> {
    let prefix = format!("#define SR_OP_{} ", op.name().to_ascii_uppercase());
    let line = header
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("the header has no id line for {op}"));
    let comment = line
        .split("/*")
        .nth(1)
        .expect("an op id line has a comment");
    let last = comment
        .trim_end_matches("*/")
        .rsplit(',')
        .next()
        .unwrap_or("");
    let last = last.trim();
    (last != "no params").then(|| last.to_string())
}

/// The field names of `typedef struct NAME { ... } NAME;` in the header.
fn struct_fields(header: &str, name: &str) -> Vec<String> {
    let open = format!("typedef struct {name} {{");
    let start = header
        .find(&open)
        .unwrap_or_else(|| panic!("the header does not define {name}"));
    let body = &header[start + open.len()..];
    let body = &body[..body.find(&format!("}} {name};")).expect("struct end")];
    // Drop the comments, then split the declarations at `;`.
    let mut code = String::new();
    let mut rest = body;
    while let Some(i) = rest.find("/*") {
        code.push_str(&rest[..i]);
        let close = rest[i..].find("*/").expect("comment end");
        rest = &rest[i + close + 2..];
    }
    code.push_str(rest);
    let mut fields = Vec::new();
    for decl in code.split(';').map(str::trim).filter(|d| !d.is_empty()) {
        // `int64_t shape[SR_MAX_RANK]`, `SrStatusPtr (*execute)(...)`, `uint32_t op`
        let name = if let Some(fp) = decl.split("(*").nth(1) {
            fp.split(')').next().unwrap_or("")
        } else {
            let last = decl.rsplit([' ', '*']).next().unwrap_or("");
            last.split('[').next().unwrap_or("")
        };
        fields.push(name.to_string());
    }
    assert!(!fields.is_empty(), "no fields parsed for {name}");
    fields
}

/// The guide's section that starts at the heading `heading` (up to the next
/// heading of the same or a higher level).
fn section<'a>(guide: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let start = guide
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("GUIDE.md has no heading `{heading}`"));
    let rest = &guide[start + heading.len() + 2..];
    let end = rest
        .match_indices("\n#")
        .find(|(i, _)| {
            let l = rest[i + 1..].chars().take_while(|&c| c == '#').count();
            l > 0 && l <= level
        })
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

/// The cells of the op table's row for `op`.
fn op_row(guide: &str, op: OpId) -> Vec<String> {
    let prefix = format!("| {} | `{}` |", op as u32, op.name());
    let row = guide
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| {
            panic!("GUIDE.md's op table has no row `{prefix} inputs | outputs | params |`")
        });
    row.trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_string())
        .collect()
}

fn count_names(cell: &str) -> usize {
    if cell == "none" {
        0
    } else {
        cell.split(", ").count()
    }
}

#[test]
fn every_op_has_its_row_with_inputs_outputs_and_params() {
    let (g, h) = (guide(), header());
    for &op in OpId::ALL {
        let cells = op_row(&g, op);
        assert_eq!(cells.len(), 5, "row of {op}: {cells:?}");
        let (inputs, outputs, params) = (&cells[2], &cells[3], &cells[4]);
        match op.input_count() {
            Some(n) => assert_eq!(
                count_names(inputs),
                n,
                "{op} takes {n} input(s); the guide lists `{inputs}`"
            ),
            None => assert!(
                inputs.starts_with("variable"),
                "{op} takes a variable number of inputs; the guide says `{inputs}`"
            ),
        }
        match op.output_count() {
            // batch_norm's row says how its outputs differ by mode.
            Some(_) if op == OpId::BatchNorm => {}
            Some(n) => assert_eq!(
                count_names(outputs),
                n,
                "{op} has {n} output(s); the guide lists `{outputs}`"
            ),
            None => assert!(
                outputs.starts_with("variable"),
                "{op} has a variable number of outputs; the guide says `{outputs}`"
            ),
        }
        let want = params_of(&h, op).unwrap_or_else(|| "none".to_string());
        assert_eq!(*params, want, "params of {op}");
    }
}

#[test]
fn every_op_has_its_semantics_section() {
    let g = guide();
    let ops = section(&g, "## 12 Op set v1");
    for &op in OpId::ALL {
        // A family section may cover several ops ("### Comparisons (21 to
        // 26)"); otherwise the op's own heading names it.
        let named = ops
            .lines()
            .filter(|l| l.starts_with("### "))
            .any(|l| l.contains(&format!("`{}`", op.name())));
        let in_family = (op.is_unary() && ops.contains("### Elementwise unary (1 to 12)"))
            || (op.is_binary() && ops.contains("### Elementwise binary (14 to 20)"))
            || (op.is_comparison() && ops.contains("### Comparisons (21 to 26)"));
        assert!(
            named || in_family,
            "GUIDE.md section 12 has no section for {op}"
        );
        // The unary and binary tables give each op's formula.
        if op.is_unary() || op.is_binary() {
            assert!(
                ops.contains(&format!("| `{}` |", op.name())),
                "the family table of GUIDE.md lacks {op}"
            );
        }
    }
}

#[test]
fn every_params_struct_and_field_is_described() {
    let (g, h) = (guide(), header());
    let mut structs: Vec<String> = OpId::ALL
        .iter()
        .filter_map(|&op| params_of(&h, op))
        .collect();
    structs.sort();
    structs.dedup();
    assert_eq!(
        structs.len(),
        11,
        "params structs of op set v1: {structs:?}"
    );
    for name in &structs {
        let text = section(&g, &format!("### {name}"));
        for field in struct_fields(&h, name) {
            assert!(
                text.contains(&format!("- `{field}`")),
                "GUIDE.md's section on {name} does not describe its field `{field}`"
            );
        }
    }
}

#[test]
fn every_table_entry_status_code_and_descriptor_field_is_described() {
    let (g, h) = (guide(), header());
    for (table, heading) in [
        (
            "SrPluginApi",
            "### SrPluginApi (the plugin's, filled by init)",
        ),
        (
            "SrHostApi",
            "### SrHostApi (the host's, read by the plugin)",
        ),
        ("SrTensorDesc", "### SrTensorDesc"),
    ] {
        let text = section(&g, heading);
        for field in struct_fields(&h, table) {
            // A field, or an entry written as its call: `execute(backend, ...)`.
            assert!(
                text.contains(&format!("`{field}`")) || text.contains(&format!("`{field}(")),
                "GUIDE.md's section on {table} does not describe `{field}`"
            );
        }
    }
    let codes = section(&g, "## 4 Status codes");
    let code_names: Vec<&str> = h
        .lines()
        .filter_map(|l| l.strip_prefix("#define SR_"))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| {
            [
                "OK",
                "INVALID_ARGUMENT",
                "UNSUPPORTED",
                "OUT_OF_MEMORY",
                "UNAVAILABLE",
                "ABI_MISMATCH",
                "PANIC",
                "INTERNAL",
            ]
            .contains(n)
        })
        .collect();
    assert_eq!(
        code_names.len(),
        8,
        "status codes in the header: {code_names:?}"
    );
    for code in code_names {
        assert!(
            codes.contains(&format!("| `SR_{code}` |")),
            "GUIDE.md's status table lacks SR_{code}"
        );
    }
}

#[test]
fn the_guide_covers_the_rules_a_backend_depends_on() {
    let g = guide();
    for heading in [
        "## 5 Ownership",
        "## 6 Buffers",
        "## 7 Threading",
        "## 8 Synchronisation",
        "## 9 Versioning",
        "## 10 Lifecycle",
        "### Conventions the host guarantees",
        "### Dtype pairs and fallback",
        "## 14 Testing: sunrise conformance",
    ] {
        assert!(
            !section(&g, heading).trim().is_empty(),
            "{heading} is empty"
        );
    }
    for phrase in [
        "64 bytes aligned",
        "stride 0",
        "NCHW",
        "[K, C/groups, R, S]",
        "first input",
        "first-maximum rule",
        "ignore_index",
        "keeps the reduced dims with extent 1",
        "sunrise conformance --device NAME",
        "struct_size >= offsetof(T, field) + sizeof(field)",
        "/usr/share/doc/sunrise-backend-dev/examples/c/",
    ] {
        assert!(g.contains(phrase), "GUIDE.md no longer says `{phrase}`");
    }
    // The guide is for C readers too: no Rust-only helper names.
    for rust in ["has_field", "size_of::<", "Option<"] {
        assert!(!g.contains(rust), "GUIDE.md mentions `{rust}`");
    }
}
