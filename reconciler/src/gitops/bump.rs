//! The edit an auto-update pull request proposes: `spec.kubernetesVersion` of a
//! `cluster.yaml`, changed in place so that comments, quoting and layout stay
//! as the user wrote them (a re-serialized file would be an unreadable diff).

/// Replace the value of `spec.kubernetesVersion` in `text` with `version`.
/// Errors when the file has no such line, or more than one.
pub fn bump_version_text(text: &str, version: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 8);
    let mut in_spec = false;
    let mut spec_indent = 0usize;
    let mut hits = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let indent = body.len() - body.trim_start().len();
        let trimmed = body.trim_start();
        if indent == 0 && !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_spec = trimmed.starts_with("spec:");
            spec_indent = 0;
            out.push_str(line);
            continue;
        }
        if in_spec
            && trimmed.starts_with("kubernetesVersion:")
            && (spec_indent == 0 || indent == spec_indent)
        {
            spec_indent = indent;
            hits += 1;
            let after_key = &trimmed["kubernetesVersion:".len()..];
            let value_start = after_key.len() - after_key.trim_start().len();
            let rest = &after_key[value_start..];
            // The value runs to a comment (` #`) or the end of the line.
            let (value, comment) = match rest.find(" #") {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let value = value.trim_end();
            let quote = match value.chars().next() {
                Some(q @ ('"' | '\'')) => q.to_string(),
                _ => String::new(),
            };
            let pad = &rest[value.len()..rest.len() - comment.len()];
            out.push_str(&body[..indent]);
            out.push_str("kubernetesVersion:");
            out.push_str(if value_start == 0 {
                " "
            } else {
                &after_key[..value_start]
            });
            out.push_str(&quote);
            out.push_str(version);
            out.push_str(&quote);
            out.push_str(pad);
            out.push_str(comment);
            out.push_str(ending);
            continue;
        }
        out.push_str(line);
    }
    match hits {
        1 => Ok(out),
        0 => Err("no spec.kubernetesVersion line to change".into()),
        n => Err(format!(
            "{n} spec.kubernetesVersion lines: refusing to guess which to change"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::bump_version_text;

    #[test]
    fn only_the_version_changes() {
        for (before, after) in [
            (
                "kind: ClusterVersion\nspec:\n  kubernetesVersion: 1.34.2\n  strategy: rolling\n",
                "kind: ClusterVersion\nspec:\n  kubernetesVersion: 1.34.3\n  strategy: rolling\n",
            ),
            (
                "spec:\n  kubernetesVersion: \"1.34.2\"   # bumped by hand\n",
                "spec:\n  kubernetesVersion: \"1.34.3\"   # bumped by hand\n",
            ),
            (
                "# top comment\nspec:\n    kubernetesVersion: '1.34.2'\r\n    components: [kubelet]\r\n",
                "# top comment\nspec:\n    kubernetesVersion: '1.34.3'\r\n    components: [kubelet]\r\n",
            ),
            (
                "metadata:\n  labels:\n    kubernetesVersion: keep\nspec:\n  kubernetesVersion: 1.34.2",
                "metadata:\n  labels:\n    kubernetesVersion: keep\nspec:\n  kubernetesVersion: 1.34.3",
            ),
        ] {
            assert_eq!(bump_version_text(before, "1.34.3").expect(before), after);
        }
    }

    #[test]
    fn ambiguous_or_missing_lines_are_refused() {
        assert!(bump_version_text("spec:\n  strategy: rolling\n", "1.34.3").is_err());
        assert!(
            bump_version_text(
                "spec:\n  kubernetesVersion: 1.1.1\n  kubernetesVersion: 1.1.2\n",
                "1.34.3"
            )
            .unwrap_err()
            .contains("2 spec.kubernetesVersion lines")
        );
    }
}
