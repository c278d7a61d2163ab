//! Orrery on Kubernetes. So far: the `Experiment` and `Trial` custom resources and their CRDs
//! ([`crd`]), and the pure rules that turn a trial attempt into a Pod and a finished Pod into an
//! attempt outcome ([`pods`]). The controllers that apply them are the next step (see the operator
//! issue's notes).

pub mod crd;
pub mod pods;
