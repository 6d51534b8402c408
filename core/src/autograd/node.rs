//! Graph nodes: a leaf holding its accumulated gradient, or an op holding
//! its inputs' nodes and its backward function.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::Result;
use crate::tensor::Tensor;

/// Maps the gradient of an op's output to the gradients of its inputs.
/// The second argument says which inputs need one (the others may be
/// `None`); the result has one entry per input.
pub(crate) type BackwardFn =
    Box<dyn FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + 'static>;

/// One node of the autograd graph.
pub(crate) struct Node {
    kind: Kind,
}

pub(crate) enum Kind {
    /// A tensor marked `requires_grad` by the user.
    Leaf { grad: Mutex<Option<Tensor>> },
    /// The output of a recorded op.
    Op {
        name: &'static str,
        /// The node of each input (`None` for inputs without history).
        inputs: Vec<Option<Arc<Node>>>,
        /// Taken (and so freed) when backward runs through this node.
        backward: Mutex<Option<BackwardFn>>,
    },
}

/// Locks without ever panicking: a poisoned lock still holds valid data
/// (the values are replaced whole).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    pub(crate) fn leaf() -> Node {
        Node {
            kind: Kind::Leaf {
                grad: Mutex::new(None),
            },
        }
    }

    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    pub(crate) fn is_leaf(&self) -> bool {
        matches!(self.kind, Kind::Leaf { .. })
    }

    pub(crate) fn grad(&self) -> Option<Tensor> {
        match &self.kind {
            Kind::Leaf { grad } => lock(grad).clone(),
            Kind::Op { .. } => None,
        }
    }

    pub(crate) fn set_grad(&self, value: Option<Tensor>) {
        if let Kind::Leaf { grad } = &self.kind {
            *lock(grad) = value;
        }
    }
}

impl Drop for Node {
    /// Unlinks long chains iteratively: dropping the last handle on a deep
    /// graph (thousands of ops) must not recurse once per node.
    fn drop(&mut self) {
        let Kind::Op { inputs, .. } = &mut self.kind else {
            return;
        };
        let mut stack: Vec<Arc<Node>> = inputs.drain(..).flatten().collect();
        while let Some(n) = stack.pop() {
            if let Ok(mut inner) = Arc::try_unwrap(n) {
                if let Kind::Op { inputs, .. } = &mut inner.kind {
                    stack.extend(inputs.drain(..).flatten());
                }
            }
        }
    }
}

/// The nodes of an op's inputs, when the op is to be recorded.
pub(crate) struct Edges(Vec<Option<Arc<Node>>>);

impl Edges {
    /// `Some` when grad is enabled and at least one input requires grad.
    /// Otherwise it costs one pointer check per input (and a thread-local
    /// read when an input requires grad) and allocates nothing.
    #[inline]
    pub(crate) fn of(inputs: &[&Tensor]) -> Option<Edges> {
        if !inputs.iter().any(|t| t.node().is_some()) || !super::is_grad_enabled() {
            return None;
        }
        Some(Edges(inputs.iter().map(|t| t.node().cloned()).collect()))
    }
}

/// Gives `out` a node for op `name` over `edges` with backward `f`. Only
/// float outputs get one.
pub(crate) fn attach<F>(out: Tensor, name: &'static str, edges: Edges, f: F) -> Tensor
where
    F: FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>> + Send + 'static,
{
    if !out.dtype().is_float() {
        return out;
    }
    let node = Node {
        kind: Kind::Op {
            name,
            inputs: edges.0,
            backward: Mutex::new(Some(Box::new(f))),
        },
    };
    out.with_node(Some(Arc::new(node)))
}
