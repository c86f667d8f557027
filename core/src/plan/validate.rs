//! Snapshot data the planner cannot read safely, refused before planning.
//!
//! A PodDisruptionBudget the planner misreads fails open: a malformed
//! percentage used to count as 0 (every pod disruptable), an unknown selector
//! operator matched no pod (the PDB silently ignored). [`validate`] names the
//! object instead; `pass` calls it first.

use cupcake_api::snapshot::{ClusterSnapshot, IntOrString, Pdb};

/// Snapshot data that would make the plan wrong, naming the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotDataError {
    /// `minAvailable`/`maxUnavailable` is a string that is not `N%`.
    #[error("PodDisruptionBudget {pdb}: spec.{field} {value:?} is not a percentage like \"50%\"")]
    NotAPercentage {
        /// `namespace/name`.
        pdb: String,
        field: &'static str,
        value: String,
    },
    /// A percentage above 100%.
    #[error("PodDisruptionBudget {pdb}: spec.{field} {value:?} is more than \"100%\"")]
    PercentageOver100 {
        pdb: String,
        field: &'static str,
        value: String,
    },
    /// A negative count.
    #[error("PodDisruptionBudget {pdb}: spec.{field} {value} is negative")]
    Negative {
        pdb: String,
        field: &'static str,
        value: i64,
    },
    /// A node name Kubernetes would not accept (empty, longer than 253 characters, or
    /// not a DNS subdomain): a plan over it would name nodes that cannot exist.
    #[error("Node {name:?}: metadata.name {reason}")]
    NodeName { name: String, reason: &'static str },
    /// Two nodes of one name: the plan would upgrade "both" and count them twice.
    #[error("Node {name}: listed twice (a node name is unique in a cluster)")]
    DuplicateNode { name: String },
    /// Two PDBs of one namespace and name.
    #[error("PodDisruptionBudget {pdb}: listed twice (namespace/name is unique in a cluster)")]
    DuplicatePdb { pdb: String },
    /// A negative count in a PDB's status (the disruption controller never writes one).
    #[error("PodDisruptionBudget {pdb}: status.{field} {value} is negative")]
    NegativeStatus {
        pdb: String,
        field: &'static str,
        value: i64,
    },
    /// A `matchExpressions` operator Kubernetes does not have.
    #[error(
        "PodDisruptionBudget {pdb}: spec.selector.matchExpressions[{index}].operator {operator:?} is not one of In, NotIn, Exists, DoesNotExist"
    )]
    SelectorOperator {
        pdb: String,
        index: usize,
        operator: String,
    },
}

/// The label-selector operators of Kubernetes.
const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// A checked `minAvailable`/`maxUnavailable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Amount {
    Count(i64),
    /// 0..=100.
    Percent(i64),
}

/// Why an `IntOrString` is not an [`Amount`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AmountError {
    NotAPercentage,
    Over100,
    Negative,
}

impl Amount {
    /// Kubernetes' rule: an integer ≥ 0, or a string of digits followed by `%`, at most 100%.
    pub(crate) fn parse(v: &IntOrString) -> Result<Self, AmountError> {
        match v {
            IntOrString::Int(n) if *n < 0 => Err(AmountError::Negative),
            IntOrString::Int(n) => Ok(Self::Count(*n)),
            IntOrString::String(s) => {
                let digits = s.strip_suffix('%').ok_or(AmountError::NotAPercentage)?;
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(AmountError::NotAPercentage);
                }
                // All digits: only a value too large for i64 fails, and that is over 100 too.
                match digits.parse::<i64>() {
                    Ok(p) if p <= 100 => Ok(Self::Percent(p)),
                    _ => Err(AmountError::Over100),
                }
            }
        }
    }

    /// Pods out of `total`; percentages rounded up, as the disruption controller does.
    pub(crate) fn of(self, total: i64) -> i64 {
        match self {
            Self::Count(n) => n,
            Self::Percent(p) => (total * p + 99) / 100,
        }
    }
}

fn check_amount(pdb: &Pdb, field: &'static str, v: &IntOrString) -> Result<(), SnapshotDataError> {
    let Err(e) = Amount::parse(v) else {
        return Ok(());
    };
    let pdb = format!("{}/{}", pdb.namespace, pdb.name);
    Err(match (v, e) {
        (IntOrString::Int(n), _) => SnapshotDataError::Negative {
            pdb,
            field,
            value: *n,
        },
        (IntOrString::String(s), AmountError::Over100) => SnapshotDataError::PercentageOver100 {
            pdb,
            field,
            value: s.clone(),
        },
        (IntOrString::String(s), _) => SnapshotDataError::NotAPercentage {
            pdb,
            field,
            value: s.clone(),
        },
    })
}

/// Why `name` is not a valid node name (a DNS subdomain, as the API server checks it).
fn node_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is empty");
    }
    if name.len() > 253 {
        return Some("is longer than 253 characters");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (!name.split('.').all(label_ok)).then_some(
        "is not a DNS subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)",
    )
}

/// A name for an error message: at most 64 characters, and says how long it was.
fn shown(name: &str) -> String {
    match name.char_indices().nth(64) {
        None => name.to_string(),
        Some((i, _)) => format!("{}… ({} characters)", &name[..i], name.chars().count()),
    }
}

/// Refuse snapshot data the planner would misread: node names Kubernetes would
/// refuse or that repeat, PDB budgets that are not a count or a 0%–100% percentage,
/// negative PDB status counts, PDBs listed twice, and selector operators Kubernetes
/// does not have. The first problem, in snapshot order.
pub fn validate(snapshot: &ClusterSnapshot) -> Result<(), SnapshotDataError> {
    let mut nodes = std::collections::HashSet::with_capacity(snapshot.nodes.len());
    for n in &snapshot.nodes {
        if let Some(reason) = node_name_problem(&n.name) {
            return Err(SnapshotDataError::NodeName {
                name: shown(&n.name),
                reason,
            });
        }
        if !nodes.insert(n.name.as_str()) {
            return Err(SnapshotDataError::DuplicateNode {
                name: n.name.clone(),
            });
        }
    }
    let mut pdbs = std::collections::HashSet::with_capacity(snapshot.pdbs.len());
    for pdb in &snapshot.pdbs {
        if !pdbs.insert((pdb.namespace.as_str(), pdb.name.as_str())) {
            return Err(SnapshotDataError::DuplicatePdb {
                pdb: format!("{}/{}", pdb.namespace, pdb.name),
            });
        }
        if let Some(st) = &pdb.status {
            let counts = [
                ("disruptionsAllowed", st.disruptions_allowed),
                ("currentHealthy", st.current_healthy),
                ("desiredHealthy", st.desired_healthy),
                ("expectedPods", st.expected_pods),
            ];
            if let Some((field, value)) = counts.into_iter().find(|(_, v)| *v < 0) {
                return Err(SnapshotDataError::NegativeStatus {
                    pdb: format!("{}/{}", pdb.namespace, pdb.name),
                    field,
                    value,
                });
            }
        }
        if let Some(v) = &pdb.min_available {
            check_amount(pdb, "minAvailable", v)?;
        }
        if let Some(v) = &pdb.max_unavailable {
            check_amount(pdb, "maxUnavailable", v)?;
        }
        let exprs = pdb.selector.iter().flat_map(|s| &s.match_expressions);
        for (index, r) in exprs.enumerate() {
            if !OPERATORS.contains(&r.operator.as_str()) {
                return Err(SnapshotDataError::SelectorOperator {
                    pdb: format!("{}/{}", pdb.namespace, pdb.name),
                    index,
                    operator: r.operator.clone(),
                });
            }
        }
    }
    Ok(())
}
