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

/// Refuse snapshot data the planner would misread: PDB budgets that are not a
/// count or a 0%–100% percentage, and selector operators Kubernetes does not have.
/// The first problem, in snapshot order.
pub fn validate(snapshot: &ClusterSnapshot) -> Result<(), SnapshotDataError> {
    for pdb in &snapshot.pdbs {
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
