//! The control protocol between a topology app and a probe, spoken as
//! JSON text frames over the WebSocket the probe opens to the app
//! (`GET /api/v1/ws?probe_id=…`).
//!
//! The probe dials out, so controls work through NAT and firewalls that
//! let the probe publish reports, and the app never needs credentials for
//! a host. A control names a node the probe reported and a control id the
//! node offers; the probe answers every request with one [`FromProbe::Result`].
//! Logs and exec open a *pipe*: a byte stream in both directions
//! (base64 in [`ToProbe::PipeInput`] / [`FromProbe::PipeOutput`]) that ends
//! with [`FromProbe::PipeClosed`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the app sends a probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToProbe {
    /// Run a control on a node.
    Control {
        /// Request id, echoed in the result.
        id: u64,
        /// The node (a container id).
        node: String,
        /// The control id (`docker_stop_container`).
        control: String,
        /// Control arguments (`timeout`, `tail`, `follow`, `cmd`).
        #[serde(default)]
        args: BTreeMap<String, String>,
    },
    /// Bytes for a pipe's input (base64).
    PipeInput {
        /// The pipe.
        pipe: String,
        /// Base64 of the bytes.
        data: String,
    },
    /// A terminal's new size.
    PipeResize {
        /// The pipe.
        pipe: String,
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// The caller is done with a pipe.
    PipeClose {
        /// The pipe.
        pipe: String,
    },
}

/// What a probe sends the app.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromProbe {
    /// First frame of a connection.
    Hello {
        /// The probe.
        probe_id: String,
        /// Its host.
        hostname: String,
        /// The controls it will run (empty with controls disabled).
        controls: Vec<String>,
    },
    /// The outcome of a [`ToProbe::Control`].
    Result {
        /// The request id.
        id: u64,
        /// Whether it worked.
        ok: bool,
        /// Why not (the daemon's message).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// The pipe opened for logs or exec.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pipe: Option<String>,
    },
    /// Bytes from a pipe (base64).
    PipeOutput {
        /// The pipe.
        pipe: String,
        /// Base64 of the bytes.
        data: String,
    },
    /// A pipe ended (the stream finished, failed, or was closed).
    PipeClosed {
        /// The pipe.
        pipe: String,
        /// Why, when it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shapes() {
        let m: ToProbe =
            serde_json::from_str(r#"{"type":"control","id":7,"node":"abc","control":"docker_stop_container"}"#)
                .unwrap();
        assert_eq!(
            m,
            ToProbe::Control {
                id: 7,
                node: "abc".into(),
                control: "docker_stop_container".into(),
                args: BTreeMap::new()
            }
        );
        let r = FromProbe::Result {
            id: 7,
            ok: false,
            error: Some("no such container".into()),
            pipe: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"type":"result","id":7,"ok":false,"error":"no such container"}"#
        );
        assert!(serde_json::from_str::<ToProbe>(r#"{"type":"launch_missiles"}"#).is_err());
    }
}
