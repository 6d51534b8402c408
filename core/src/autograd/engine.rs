//! The backward pass: collect the graph under a root, then run each node's
//! backward function once all of its consumers have passed it their
//! gradients (Kahn's algorithm; iterative, no recursion).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::node::{lock, Kind, Node};
use super::ModeGuard;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The nodes reachable from a root, each with the number of edges that
/// reach it (its pending consumers).
struct Graph {
    nodes: Vec<Arc<Node>>,
    pending: Vec<usize>,
    index: HashMap<*const Node, usize>,
}

impl Graph {
    fn add(&mut self, n: &Arc<Node>) -> usize {
        let i = self.nodes.len();
        self.nodes.push(n.clone());
        self.pending.push(0);
        self.index.insert(Arc::as_ptr(n), i);
        i
    }

    /// Depth-first over the inputs, counting edges; fails before anything
    /// runs when a node's backward function was already consumed.
    fn collect(root: &Arc<Node>) -> Result<Graph> {
        let mut g = Graph {
            nodes: Vec::new(),
            pending: Vec::new(),
            index: HashMap::new(),
        };
        let mut stack = vec![g.add(root)];
        while let Some(i) = stack.pop() {
            let node = g.nodes[i].clone();
            let Kind::Op {
                name,
                inputs,
                backward,
            } = node.kind()
            else {
                continue;
            };
            if lock(backward).is_none() {
                return Err(freed(name));
            }
            for input in inputs.iter().flatten() {
                let j = match g.index.get(&Arc::as_ptr(input)) {
                    Some(&j) => j,
                    None => {
                        let j = g.add(input);
                        stack.push(j);
                        j
                    }
                };
                g.pending[j] += 1;
            }
        }
        Ok(g)
    }
}

fn freed(name: &str) -> Error {
    Error::invalid(
        "backward",
        format!(
            "the graph through `{name}` was already freed by an earlier backward; \
             run the forward pass again"
        ),
    )
}

/// Back-propagates `seed` (the gradient of `root`, already checked) into
/// the leaves under `root`.
pub(super) fn backward(root: &Tensor, seed: Tensor) -> Result<()> {
    let root_node = root.node().ok_or_else(|| {
        Error::invalid(
            "backward",
            "the tensor does not require grad: no input of the ops that made it \
             was marked with set_requires_grad(true), or it was made inside no_grad",
        )
    })?;
    let _mode = ModeGuard::set(false);
    let mut g = Graph::collect(root_node)?;
    let mut grads: Vec<Option<Tensor>> = vec![None; g.nodes.len()];
    grads[0] = Some(seed);
    let mut ready = vec![0usize];
    let mut leaves: Vec<(usize, Tensor)> = Vec::new();
    while let Some(i) = ready.pop() {
        let node = g.nodes[i].clone();
        let grad = grads[i].take();
        let (name, inputs, backward) = match node.kind() {
            Kind::Leaf { .. } => {
                leaves.extend(grad.map(|gr| (i, gr)));
                continue;
            }
            Kind::Op {
                name,
                inputs,
                backward,
            } => (*name, inputs, backward),
        };
        let input_grads = run_node(name, inputs, backward, grad)?;
        for (input, gi) in inputs.iter().zip(input_grads) {
            let Some(input) = input else { continue };
            let j = g.index[&Arc::as_ptr(input)];
            if let Some(gi) = gi {
                grads[j] = Some(match grads[j].take() {
                    Some(acc) => acc.add(&gi)?,
                    None => gi,
                });
            }
            g.pending[j] -= 1;
            if g.pending[j] == 0 {
                ready.push(j);
            }
        }
    }
    for (i, gr) in leaves {
        if let Kind::Leaf { grad } = g.nodes[i].kind() {
            accumulate(grad, gr)?;
        }
    }
    Ok(())
}

/// Runs one op node's backward function (taking it, so it is freed).
fn run_node(
    name: &'static str,
    inputs: &[Option<Arc<Node>>],
    backward: &Mutex<Option<super::node::BackwardFn>>,
    grad: Option<Tensor>,
) -> Result<Vec<Option<Tensor>>> {
    let arity = inputs.len();
    let f = lock(backward).take().ok_or_else(|| freed(name))?;
    let Some(grad) = grad else {
        return Ok(vec![None; arity]);
    };
    let needs: Vec<bool> = inputs.iter().map(Option::is_some).collect();
    let out = f(&grad, &needs)?;
    if out.len() != arity {
        return Err(Error::invalid(
            "backward",
            format!(
                "`{name}` returned {} gradients for {arity} inputs",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// Adds `g` into a leaf's gradient. A first gradient is kept as is only
/// when nothing else can see its storage; otherwise it is copied, so
/// in-place updates of one leaf's gradient never reach another's.
fn accumulate(slot: &Mutex<Option<Tensor>>, g: Tensor) -> Result<()> {
    let mut slot = lock(slot);
    let new = match slot.as_ref() {
        Some(old) => old.add(&g)?,
        None if g.owns_storage() => g.with_node(None),
        None => g.deep_copy()?,
    };
    *slot = Some(new);
    Ok(())
}
