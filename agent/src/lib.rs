//! # cupcake-agent
//!
//! The node agent: the last hop of CUPCAKE's data flow. The reconciler plans,
//! gates and renders a DirectUpdate; its rollout controller drains a node and
//! *assigns* it by writing annotations on the Node; the agent on that node runs
//! the host steps and *reports* on the same Node; the controller then verifies
//! (kubelet version, readiness, static pod image tags), uncordons and moves on.
//!
//! ```text
//! rollout controller ──(operation-id, target-version, components, upgrade-mode, status=pending)──► Node
//!        ▲                                                                                          │ watch (own node only)
//!        └──────────(status=in-progress|completed|failed, step, message)──── agent ◄────────────────┘
//!                                                                             │ steps, checkpoints
//!                                                                             ▼
//!                                                       <state-dir>/operation-<id>/ + the executor
//! ```
//!
//! The controller decides; the agent only reports. It writes nothing but its own
//! Node's `status`, `step` and `message` annotations (merge patches, see
//! [`node`]) and its answers to the controller's requests (`backup-result`,
//! `preflight-result`) — plus, for the simulate executor, what kubeadm would change on the
//! API objects: the Node's `status.nodeInfo.kubeletVersion` and the image tags of
//! its static pods in `kube-system`. Every annotation key and status string comes
//! from [`cupcake_api::labels`] and [`cupcake_api::protocol`].
//!
//! ## Modules, in flow order
//!
//! - [`watch`]: which nodes this process acts for (its own Node by field
//!   selector, or every node for `simulate --all-nodes`) and one worker per node;
//! - [`assignment`]: annotations → a typed [`assignment::Assignment`], with
//!   errors naming the annotation and the allowed values;
//! - [`operation`]: the step runner — decides from the node's current state and
//!   its checkpoint whether to start, resume, retry, or report again;
//! - [`steps`]: the one step list of an assignment (role × mode × components),
//!   shared by every executor;
//! - [`checkpoint`]: the on-disk record that makes a restart resume at the first
//!   step not done and never run a done step again;
//! - [`executor`]: the [`executor::Executor`] trait, [`executor::kubeadm`] (the
//!   real host changes, through [`executor::host`]: chroot into `--host-root`, or
//!   nsenter into PID 1's namespaces) and [`executor::simulate`];
//! - [`node`]: reading the Node and the guarded reports;
//! - [`backup`], [`backup_store`], [`backup_stage`]: the etcd backup (snapshot,
//!   checks, upload, read-back, manifest, retention) and how the agent answers
//!   the controller's `backup-request` with a `backup-result`;
//! - [`preflight`]: the answer to the controller's `preflight-request` (free disk
//!   space, and etcd's members and alarms on the backup node);
//! - [`cli`]: flags, logs, signals.
//!
//! ## The protocol, as the agent plays it
//!
//! 1. The controller writes the assignment with `status=pending`.
//! 2. The agent opens (or creates) `<state-dir>/operation-<id>/`, writes
//!    `status=in-progress`, and runs each step not yet done: `step=<NN-name>`,
//!    `step-NN-name.inprogress`, the executor, `step-NN-name.done`.
//! 3. It writes `status=completed` (and the `completed` marker), or
//!    `status=failed` with `message` = `step NN-name failed: <why>` on one line
//!    (and the `failed` marker holding the same line).
//!
//! Restarts and repeats, all decided from the node and the checkpoint
//! (see [`operation`] for the full table):
//!
//! - killed mid-operation: the restarted agent resumes at the first step not
//!   done; the step that was running (`.inprogress`) runs again, done ones never;
//! - the same assignment again after it completed: reported `completed` again, nothing runs;
//! - **retry after a failure**: a `status=pending` written after the agent reported
//!   `failed` (the controller's `retry=<node>`, or a human following the runbook)
//!   removes the `failed` marker and resumes at the failed step. The runbook's
//!   "delete the `failed` file, then set `status=pending`" works too; deleting the
//!   file is just not needed. A `failed` marker with `status=in-progress` (the agent
//!   died before its report landed) is reported `failed` again, not retried;
//! - the same operation id with another target (the next hop of a multi-hop
//!   upgrade): the finished earlier run is moved to `operation-<id>@<target>` and
//!   a new one starts; an *unfinished* run of another assignment is refused with
//!   `failed` and a message naming the directory;
//! - a malformed assignment, `upgrade-mode=apply` on a worker, or a damaged
//!   checkpoint directory: `failed` with a message naming the annotation or file.
//!
//! Reports are written only while the node still carries the assignment they
//! belong to; steps start only after `in-progress` was written that way. Once
//! started, a run goes to its end (a half-upgraded host is worse than a finished
//! one). On SIGTERM the agent starts no new step, waits up to
//! [`watch::SHUTDOWN_GRACE`] for running ones, and exits; the checkpoint resumes.
//!
//! ## Running it
//!
//! ```text
//! cupcake-agent --node-name "$NODE_NAME" --executor kubeadm --host-root /host     # the DaemonSet
//! cupcake-agent steps --role control-plane --first --from 1.33.4 --to 1.34.2     # what it runs, without running it
//! cupcake-agent --node-name kwok-w-1 --executor simulate --step-duration 200ms   # one simulated node
//! cupcake-agent simulate --all-nodes [--selector type=kwok] --state-dir /tmp/agents [--fail-step kubelet --fail-nodes w-2]
//! ```
//!
//! RBAC: `get`/`list`/`watch`/`patch` on its node (the DaemonSet should restrict
//! patches to its own node, e.g. with a ValidatingAdmissionPolicy on the
//! service account token's node name); the simulate executor also needs `patch`
//! on `nodes/status` and `get`/`patch` on pods in `kube-system`.
//!
//! Checkpoint directories are kept after an operation (they are the record of
//! what ran); nothing prunes them yet.
#![forbid(unsafe_code)]

pub mod assignment;
pub mod backup;
pub mod backup_stage;
pub mod backup_store;
pub mod checkpoint;
pub mod cli;
pub mod executor;
pub mod node;
pub mod operation;
pub mod preflight;
pub mod steps;
pub mod watch;
