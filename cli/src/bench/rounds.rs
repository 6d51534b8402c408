//! `--rounds N`: the whole suite (every tier and thread count, ours and the
//! peer) run N times one after the other, so that our figures and the
//! peer's alternate on a noisy machine, and each row reported as the
//! medians of its rounds.

use serde_json::{Map, Value};

/// What names a row across rounds.
fn identity(row: &Value) -> String {
    ["suite", "kind", "case", "op", "isa", "threads"]
        .iter()
        .map(|k| row.get(*k).map_or(String::new(), Value::to_string))
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// The median of `v` (the lower middle of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

/// One value from the same field of every round: numbers by their median,
/// objects field by field, anything else (names, details) from the first.
fn merge(values: &[&Value]) -> Value {
    let first = values[0];
    if first.is_number() {
        if values.iter().all(|v| v == &first) {
            // Thread counts, batch sizes: kept as they are (integers stay integers).
            return first.clone();
        }
        let ints: Vec<i64> = values.iter().filter_map(|v| v.as_i64()).collect();
        if ints.len() == values.len() {
            let mut ints = ints;
            ints.sort_unstable();
            return Value::from(ints[(ints.len() - 1) / 2]);
        }
        let nums: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
        if nums.len() == values.len() {
            return serde_json::Number::from_f64(median(nums)).map_or(first.clone(), Value::Number);
        }
        return first.clone();
    }
    let Value::Object(obj) = first else {
        return first.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        let same: Vec<&Value> = values.iter().filter_map(|r| r.get(k)).collect();
        out.insert(
            k.clone(),
            if same.len() == values.len() {
                merge(&same)
            } else {
                v.clone()
            },
        );
    }
    Value::Object(out)
}

/// The rows of all rounds folded into one row per identity (in the first
/// round's order), each numeric field the median of its rounds, with
/// `rounds` set to how many rounds had the row.
pub(super) fn fold(rounds: &[Vec<Value>]) -> Vec<Value> {
    if rounds.len() <= 1 {
        return rounds.first().cloned().unwrap_or_default();
    }
    let mut order: Vec<String> = Vec::new();
    let mut groups: std::collections::HashMap<String, Vec<&Value>> = Default::default();
    for row in rounds.iter().flatten() {
        let id = identity(row);
        let g = groups.entry(id.clone()).or_default();
        if g.is_empty() {
            order.push(id);
        }
        g.push(row);
    }
    order
        .iter()
        .map(|id| {
            let g = &groups[id];
            let mut row = merge(g);
            if let Value::Object(o) = &mut row {
                o.insert("rounds".into(), Value::from(g.len()));
            }
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_fold_into_medians_per_case() {
        let r = |ours: f64, peer: f64, case: &str| {
            json!({"suite": "train", "kind": "step", "case": case, "isa": "avx2", "threads": 1,
                   "ours_seconds": ours, "peer_seconds": peer, "peer_detail": "torch",
                   "split": {"conv": ours / 2.0}})
        };
        let rounds = vec![
            vec![r(3.0, 9.0, "a"), r(1.0, 1.0, "b")],
            vec![r(1.0, 7.0, "a")],
            vec![r(2.0, 8.0, "a"), r(5.0, 2.0, "b")],
        ];
        let rows = fold(&rounds);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["case"], "a");
        assert_eq!(rows[0]["ours_seconds"], 2.0);
        assert_eq!(rows[0]["peer_seconds"], 8.0);
        assert_eq!(rows[0]["split"]["conv"], 1.0);
        assert_eq!(rows[0]["peer_detail"], "torch");
        assert_eq!(rows[0]["rounds"], 3);
        // Equal integers stay integers (the table prints threads as 1, not 1.0).
        assert!(rows[0]["threads"].is_u64());
        let counts = [
            json!({"case": "c", "n": 3}),
            json!({"case": "c", "n": 8}),
            json!({"case": "c", "n": 5}),
        ];
        let folded = fold(&counts.map(|r| vec![r]));
        assert_eq!(folded[0]["n"], json!(5));
        assert!(folded[0]["n"].is_i64());
        // Two rounds: the lower middle.
        assert_eq!(rows[1]["ours_seconds"], 1.0);
        assert_eq!(rows[1]["rounds"], 2);
        // Another thread count is another row.
        let mut other = r(4.0, 4.0, "a");
        other["threads"] = json!(2);
        assert_eq!(fold(&[vec![r(1.0, 1.0, "a")], vec![other]]).len(), 2);
    }

    #[test]
    fn one_round_is_left_as_it_is() {
        let rows = vec![json!({"case": "x", "ours_seconds": 1.5})];
        assert_eq!(fold(std::slice::from_ref(&rows)), rows);
        assert!(fold(&[]).is_empty());
    }
}
