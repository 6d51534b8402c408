//! A node's attributes, read by name with the type ONNX gives them; a
//! missing required attribute or one of the wrong type is an error naming
//! the node and the attribute.

use crate::error::{Error, Result};
use crate::proto::attribute_proto::AttributeType;
use crate::proto::{AttributeProto, NodeProto, TensorProto};

/// The attributes of one node.
pub(crate) struct Attrs<'a> {
    node: &'a NodeProto,
    /// `node "name" (Op)`, for messages.
    pub(crate) at: String,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(node: &'a NodeProto) -> Attrs<'a> {
        Attrs {
            node,
            at: node_label(node),
        }
    }

    fn get(&self, name: &str, ty: AttributeType) -> Result<Option<&'a AttributeProto>> {
        let Some(a) = self.node.attribute.iter().find(|a| a.name() == name) else {
            return Ok(None);
        };
        // Files from before IR version 4 may leave the type out.
        if a.r#type.is_some() && a.r#type() != ty {
            return Err(self.bad(name, format!("is {:?}, expected {:?}", a.r#type(), ty)));
        }
        Ok(Some(a))
    }

    fn bad(&self, name: &str, detail: impl std::fmt::Display) -> Error {
        Error::invalid(
            format!("{}.attribute {name:?}", self.at),
            detail.to_string(),
        )
    }

    /// An unsupported value of attribute `name`.
    pub(crate) fn unsupported(&self, name: &str, detail: impl std::fmt::Display) -> Error {
        Error::unsupported(
            format!("{}.attribute {name:?}", self.at),
            detail.to_string(),
        )
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.get(name, AttributeType::Int)?.map(|a| a.i()))
    }

    pub(crate) fn int_or(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    pub(crate) fn float_or(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self
            .get(name, AttributeType::Float)?
            .map_or(default, |a| a.f()))
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        Ok(self
            .get(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>> {
        self.get(name, AttributeType::String)?
            .map(|a| String::from_utf8(a.s().to_vec()).map_err(|_| self.bad(name, "is not UTF-8")))
            .transpose()
    }

    pub(crate) fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>> {
        Ok(self
            .get(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref()))
    }

    /// Whether the node has attribute `name` at all.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.node.attribute.iter().any(|a| a.name() == name)
    }

    /// Attribute `name` as a required int.
    pub(crate) fn req_int(&self, name: &str) -> Result<i64> {
        self.int(name)?.ok_or_else(|| self.bad(name, "is required"))
    }
}

/// `node "name" (Op)`, or the first output's name where the node has none.
pub(crate) fn node_label(node: &NodeProto) -> String {
    let name = match node.name() {
        "" => node.output.first().map_or("", String::as_str),
        n => n,
    };
    format!("node {name:?} ({})", node.op_type())
}
