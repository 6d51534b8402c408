//! [`Model`]: a decoded, checked and sorted ONNX graph, and its execution.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use prost::Message;
use sunrise::{DType, Device, Tensor};

use crate::attrs::node_label;
use crate::error::{Error, Result};
use crate::ops;
use crate::proto::{type_proto, ModelProto, NodeProto, ValueInfoProto};
use crate::tensor::{dtype_of, from_proto};

/// A graph input or output as the model declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueInfo {
    /// Its name.
    pub name: String,
    /// Its element type, where declared and one the core has.
    pub dtype: Option<DType>,
    /// Its dimensions where declared: a number, or a symbolic name
    /// (`"batch"`), or `None` when unknown. `None` for the whole when the
    /// rank is not declared.
    pub dims: Option<Vec<Dim>>,
}

/// One declared dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed extent.
    Fixed(usize),
    /// A named (symbolic) extent, e.g. the batch.
    Symbolic(String),
    /// Not given.
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => write!(f, "{s}"),
            Dim::Unknown => write!(f, "?"),
        }
    }
}

/// An ONNX model ready to run: initializers decoded, nodes in a valid
/// order, each value's last use known.
#[derive(Debug)]
pub struct Model {
    nodes: Vec<NodeProto>,
    /// The default domain's opset version.
    opset: i64,
    ir_version: i64,
    producer: String,
    initializers: HashMap<String, Tensor>,
    inputs: Vec<ValueInfo>,
    outputs: Vec<ValueInfo>,
    /// For each node, the values it is the last reader of.
    frees: Vec<Vec<String>>,
    /// The initializers moved to each non-CPU device a run used, so that
    /// a device gets them once rather than every run.
    on_device: std::sync::Mutex<Vec<(Device, HashMap<String, Tensor>)>>,
}

/// What `sunrise run --info` prints.
#[derive(Debug, Clone)]
pub struct Info {
    /// IR version of the file.
    pub ir_version: i64,
    /// The default domain's opset.
    pub opset: i64,
    /// The program that wrote the file.
    pub producer: String,
    /// Graph inputs (initializers excluded).
    pub inputs: Vec<ValueInfo>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfo>,
    /// Op type and how many nodes use it.
    pub ops: BTreeMap<String, usize>,
    /// Op types this crate does not run yet.
    pub unsupported: Vec<String>,
    /// Number of initializers and their elements.
    pub initializers: (usize, usize),
}

fn value_info(v: &ValueInfoProto) -> ValueInfo {
    let tensor = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => Some(t),
        _ => None,
    };
    let dtype = tensor.and_then(|t| t.elem_type.and_then(|e| dtype_of(e, "").ok()));
    let dims = tensor.and_then(|t| t.shape.as_ref()).map(|s| {
        s.dim
            .iter()
            .map(|d| {
                use crate::proto::tensor_shape_proto::dimension::Value;
                match &d.value {
                    Some(Value::DimValue(n)) if *n >= 0 => Dim::Fixed(*n as usize),
                    Some(Value::DimParam(p)) if !p.is_empty() => Dim::Symbolic(p.clone()),
                    _ => Dim::Unknown,
                }
            })
            .collect()
    });
    ValueInfo {
        name: v.name().to_string(),
        dtype,
        dims,
    }
}

impl Model {
    /// Loads the model at `path`. External data files are looked up below
    /// `path`'s directory only.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        Model::from_bytes(&bytes, Some(&dir), &path.display().to_string())
    }

    /// Decodes a model from `bytes` (`what` names it in errors); external
    /// data is read from below `dir`, refused when `dir` is `None`.
    pub fn from_bytes(bytes: &[u8], dir: Option<&Path>, what: &str) -> Result<Model> {
        let m = ModelProto::decode(bytes).map_err(|e| Error::Decode {
            what: what.to_string(),
            detail: e.to_string(),
        })?;
        Model::from_proto(m, dir)
    }

    /// Checks and prepares a decoded model.
    pub fn from_proto(mut m: ModelProto, dir: Option<&Path>) -> Result<Model> {
        let graph = m
            .graph
            .take()
            .ok_or_else(|| Error::invalid("model", "no graph"))?;
        let mut opset = None;
        for o in &m.opset_import {
            if matches!(o.domain(), "" | "ai.onnx") {
                opset = Some(o.version());
            }
        }
        // IR version 3 files without opset_import default to opset 1.
        let opset = opset.unwrap_or(if m.opset_import.is_empty() { 1 } else { 0 });
        let cpu = Device::cpu();
        let mut initializers = HashMap::new();
        for t in &graph.initializer {
            let name = t.name().to_string();
            if name.is_empty() {
                return Err(Error::invalid(
                    "graph.initializer",
                    "an initializer has no name",
                ));
            }
            initializers.insert(name, from_proto(t, dir, &cpu)?);
        }
        if !graph.sparse_initializer.is_empty() {
            return Err(Error::unsupported(
                "graph.sparse_initializer",
                "sparse initializers",
            ));
        }
        let inputs: Vec<ValueInfo> = graph
            .input
            .iter()
            .filter(|v| !initializers.contains_key(v.name()))
            .map(value_info)
            .collect();
        let outputs: Vec<ValueInfo> = graph.output.iter().map(value_info).collect();
        let mut defined: HashSet<String> = initializers.keys().cloned().collect();
        defined.extend(graph.input.iter().map(|v| v.name().to_string()));
        let nodes = sort(graph.node, &defined)?;
        let mut available = defined;
        for n in &nodes {
            available.extend(n.output.iter().filter(|o| !o.is_empty()).cloned());
        }
        for o in &outputs {
            if !available.contains(&o.name) {
                return Err(Error::invalid(
                    format!("graph.output {:?}", o.name),
                    "no node, input or initializer defines it",
                ));
            }
        }
        let frees = last_uses(&nodes, &outputs);
        Ok(Model {
            nodes,
            opset,
            ir_version: m.ir_version(),
            producer: format!("{} {}", m.producer_name(), m.producer_version())
                .trim()
                .to_string(),
            initializers,
            inputs,
            outputs,
            frees,
            on_device: std::sync::Mutex::default(),
        })
    }

    /// Graph inputs the caller feeds (initializers excluded).
    pub fn inputs(&self) -> &[ValueInfo] {
        &self.inputs
    }

    /// Graph outputs, in order.
    pub fn outputs(&self) -> &[ValueInfo] {
        &self.outputs
    }

    /// The default domain's opset version.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// A summary: inputs, outputs, opset, op histogram, what is missing.
    pub fn info(&self) -> Info {
        let mut hist = BTreeMap::new();
        for n in &self.nodes {
            *hist.entry(n.op_type().to_string()).or_insert(0) += 1;
        }
        let unsupported = hist
            .keys()
            .filter(|op| !ops::supported_ops().contains(&op.as_str()))
            .cloned()
            .collect();
        Info {
            ir_version: self.ir_version,
            opset: self.opset,
            producer: self.producer.clone(),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            ops: hist,
            unsupported,
            initializers: (
                self.initializers.len(),
                self.initializers.values().map(Tensor::numel).sum(),
            ),
        }
    }

    /// Runs the graph on `inputs` (by name), on the device of the first
    /// input (the CPU when there is none). Returns the graph outputs in
    /// order.
    pub fn run(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        sunrise::no_grad(|| self.run_inner(inputs))
    }

    fn run_inner(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<(String, Tensor)>> {
        let device = inputs
            .first()
            .map_or_else(Device::cpu, |(_, t)| t.device().clone());
        let mut env: HashMap<&str, Tensor> = HashMap::new();
        let moved = self.initializers_on(&device)?;
        for (name, t) in &self.initializers {
            let t = moved.as_ref().and_then(|m| m.get(name)).unwrap_or(t);
            env.insert(name, t.clone());
        }
        for (name, t) in inputs {
            let key: &str = if let Some(decl) = self.inputs.iter().find(|v| v.name == *name) {
                check_input(decl, t)?;
                &decl.name
            } else if let Some((k, _)) = self.initializers.get_key_value(*name) {
                // ONNX lets a caller override an initializer listed as input.
                k
            } else {
                let names: Vec<&str> = self.inputs.iter().map(|v| v.name.as_str()).collect();
                return Err(Error::Input {
                    name: name.to_string(),
                    detail: format!("the model has no such input (inputs: {})", names.join(", ")),
                });
            };
            if t.device() != &device {
                return Err(Error::Input {
                    name: name.to_string(),
                    detail: format!("on {}, the first input on {device}", t.device()),
                });
            }
            env.insert(key, t.clone());
        }
        for v in &self.inputs {
            if !env.contains_key(v.name.as_str()) {
                return Err(Error::Input {
                    name: v.name.clone(),
                    detail: "not given".into(),
                });
            }
        }
        for (node, frees) in self.nodes.iter().zip(&self.frees) {
            let args: Vec<Option<Tensor>> = node
                .input
                .iter()
                .map(|i| {
                    if i.is_empty() {
                        None
                    } else {
                        env.get(i.as_str()).cloned()
                    }
                })
                .collect();
            let outs = ops::run(node, self.opset, &args, &device)?;
            for (name, t) in node.output.iter().zip(outs) {
                if !name.is_empty() {
                    env.insert(name, t);
                }
            }
            for f in frees {
                env.remove(f.as_str());
            }
        }
        self.outputs
            .iter()
            .map(|o| {
                let t = env.get(o.name.as_str()).cloned().ok_or_else(|| {
                    Error::invalid(format!("graph.output {:?}", o.name), "was not produced")
                })?;
                Ok((o.name.clone(), t))
            })
            .collect()
    }
}

impl Model {
    /// The initializers on `device` (`None` on the CPU, where they already
    /// are), copied there on the first run that needs them.
    fn initializers_on(&self, device: &Device) -> Result<Option<HashMap<String, Tensor>>> {
        if *device == Device::cpu() {
            return Ok(None);
        }
        let mut cache = self.on_device.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = cache.iter().find(|(d, _)| d == device) {
            return Ok(Some(m.clone()));
        }
        let mut m = HashMap::with_capacity(self.initializers.len());
        for (name, t) in &self.initializers {
            m.insert(name.clone(), t.to(device)?);
        }
        cache.push((device.clone(), m.clone()));
        Ok(Some(m))
    }
}

/// Checks a fed tensor against the declared dtype and fixed dimensions.
fn check_input(decl: &ValueInfo, t: &Tensor) -> Result<()> {
    let bad = |detail: String| Error::Input {
        name: decl.name.clone(),
        detail,
    };
    if let Some(dt) = decl.dtype {
        if dt != t.dtype() {
            return Err(bad(format!("dtype {}, the model declares {dt}", t.dtype())));
        }
    }
    if let Some(dims) = &decl.dims {
        let fits = dims.len() == t.rank()
            && dims
                .iter()
                .zip(t.shape())
                .all(|(d, &n)| !matches!(d, Dim::Fixed(m) if *m != n));
        if !fits {
            let want: Vec<String> = dims.iter().map(Dim::to_string).collect();
            return Err(bad(format!(
                "shape {:?}, the model declares [{}]",
                t.shape(),
                want.join(", ")
            )));
        }
    }
    Ok(())
}

/// The nodes in an order where each runs after the nodes it reads from
/// (Kahn's algorithm, stable in file order); every input must be defined
/// and every output defined once.
fn sort(nodes: Vec<NodeProto>, defined: &HashSet<String>) -> Result<Vec<NodeProto>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if defined.contains(o) || producer.insert(o, i).is_some() {
                return Err(Error::invalid(
                    node_label(n),
                    format!("output {o:?} is defined more than once"),
                ));
            }
        }
    }
    let mut waits = vec![0usize; nodes.len()];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for inp in n.input.iter().filter(|s| !s.is_empty()) {
            match producer.get(inp.as_str()) {
                Some(&p) => {
                    waits[i] += 1;
                    readers[p].push(i);
                }
                None if defined.contains(inp) => {}
                None => {
                    return Err(Error::invalid(
                        node_label(n),
                        format!("input {inp:?} is not defined by any node, input or initializer"),
                    ))
                }
            }
        }
    }
    let mut ready: std::collections::BTreeSet<usize> =
        (0..nodes.len()).filter(|&i| waits[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &r in &readers[i] {
            waits[r] -= 1;
            if waits[r] == 0 {
                ready.insert(r);
            }
        }
    }
    if order.len() != nodes.len() {
        let stuck = (0..nodes.len())
            .find(|i| waits[*i] > 0)
            .expect("a node waits");
        return Err(Error::invalid(
            node_label(&nodes[stuck]),
            "the graph has a cycle",
        ));
    }
    let mut slots: Vec<Option<NodeProto>> = nodes.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .map(|i| slots[i].take().expect("each once"))
        .collect())
}

/// For each node, the values whose last reader it is (graph outputs are
/// never freed).
fn last_uses(nodes: &[NodeProto], outputs: &[ValueInfo]) -> Vec<Vec<String>> {
    let keep: HashSet<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    let mut last: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for v in n.input.iter().chain(&n.output).filter(|s| !s.is_empty()) {
            last.insert(v, i);
        }
    }
    let mut frees = vec![Vec::new(); nodes.len()];
    for (v, i) in last {
        if !keep.contains(v) {
            frees[i].push(v.to_string());
        }
    }
    frees
}
