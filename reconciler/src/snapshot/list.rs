//! Writing a kubectl `v1 List` one object at a time (`cupcake snapshot`).

use std::io::{self, Write};

/// Writes `{apiVersion: v1, items: [...], kind: List, metadata: {resourceVersion: ""}}`
/// item by item, byte for byte what serialising the whole list at once gives (keys in
/// order, as kubectl prints them), without ever holding more than one item.
#[derive(Debug)]
pub struct ListWriter<W: Write> {
    out: W,
    yaml: bool,
    items: usize,
}

impl<W: Write> ListWriter<W> {
    /// Start the list (YAML or JSON) on `out`.
    pub fn new(mut out: W, yaml: bool) -> io::Result<Self> {
        out.write_all(if yaml {
            b"apiVersion: v1\nitems:"
        } else {
            b"{\"apiVersion\":\"v1\",\"items\":["
        })?;
        Ok(ListWriter {
            out,
            yaml,
            items: 0,
        })
    }

    /// One more item of the list.
    pub fn item(&mut self, v: &serde_json::Value) -> io::Result<()> {
        if self.yaml {
            if self.items == 0 {
                self.out.write_all(b"\n")?;
            }
            // A one-item sequence is the item as the list's block sequence prints it.
            let text = yaml_serde::to_string(std::slice::from_ref(v)).map_err(io::Error::other)?;
            self.out.write_all(text.as_bytes())?;
        } else {
            if self.items > 0 {
                self.out.write_all(b",")?;
            }
            serde_json::to_writer(&mut self.out, v).map_err(io::Error::other)?;
        }
        self.items += 1;
        Ok(())
    }

    /// How many items were written.
    pub fn len(&self) -> usize {
        self.items
    }

    /// No item was written.
    pub fn is_empty(&self) -> bool {
        self.items == 0
    }

    /// End the list; returns the writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        if self.yaml {
            if self.items == 0 {
                self.out.write_all(b" []\n")?;
            }
            self.out
                .write_all(b"kind: List\nmetadata:\n  resourceVersion: ''\n")?;
        } else {
            self.out
                .write_all(b"],\"kind\":\"List\",\"metadata\":{\"resourceVersion\":\"\"}}\n")?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::ListWriter;
    use serde_json::{Value, json};

    /// The whole list serialised at once: what `cupcake snapshot` printed before it
    /// wrote item by item.
    fn whole(items: &[Value], yaml: bool) -> String {
        let list = json!({
            "apiVersion": "v1",
            "items": items,
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        });
        if yaml {
            yaml_serde::to_string(&list).unwrap()
        } else {
            serde_json::to_string(&list).unwrap() + "\n"
        }
    }

    fn streamed(items: &[Value], yaml: bool) -> String {
        let mut w = ListWriter::new(Vec::new(), yaml).unwrap();
        for v in items {
            w.item(v).unwrap();
        }
        assert_eq!(w.len(), items.len());
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn item_by_item_is_the_whole_list() {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n-1",
            "labels": {"node-role.kubernetes.io/control-plane": "", "a": "multi\nline"}},
            "status": {"nodeInfo": {"kubeletVersion": "v1.33.4"}, "conditions": [
                {"type": "Ready", "status": "True"}]}});
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
            "namespace": "default", "annotations": {}}, "spec": {"nodeName": "n-1",
            "containers": [{"name": "c", "image": "x:1", "args": ["--a=1", "'quoted'", ""]}]},
            "status": {"phase": "Running"}});
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "b", "namespace": "default"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {}}}});
        let cases: [(&str, Vec<Value>); 4] = [
            ("empty", vec![]),
            ("one node", vec![node.clone()]),
            ("all kinds", vec![node.clone(), pod.clone(), pdb.clone()]),
            ("many", vec![pod; 20]),
        ];
        for (name, items) in cases {
            for yaml in [false, true] {
                assert_eq!(
                    streamed(&items, yaml),
                    whole(&items, yaml),
                    "{name}, yaml: {yaml}"
                );
            }
        }
    }

    #[test]
    fn the_output_reads_back_as_a_snapshot() {
        let items = vec![json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "n-1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"nodeInfo": {"kubeletVersion": "v1.33.4"},
                "conditions": [{"type": "Ready", "status": "True"}]}})];
        for yaml in [false, true] {
            let text = streamed(&items, yaml);
            let snap = crate::snapshot::parse(&text, "snap")
                .unwrap_or_else(|e| panic!("yaml {yaml}: {e}\n{text}"));
            assert_eq!(snap.nodes.len(), 1, "yaml {yaml}");
        }
    }
}
