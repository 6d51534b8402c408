//! `sunrise::profile` in a process of its own (its counts are process-wide):
//! off, nothing is counted; on, every op the front end runs is, per op and
//! family; reset zeroes it.

use sunrise::profile;
use sunrise::{DType, Device, OpId, Tensor};

#[test]
fn ops_are_counted_only_while_enabled() {
    let cpu = Device::cpu();
    let a = Tensor::rand_uniform(&[64, 64], -1.0, 1.0, 1, DType::F32, &cpu).unwrap();
    profile::set_enabled(false);
    profile::reset();
    a.matmul(&a).unwrap();
    assert!(profile::snapshot().is_empty(), "{:?}", profile::snapshot());

    profile::set_enabled(true);
    assert!(profile::enabled());
    for _ in 0..3 {
        a.matmul(&a).unwrap().add(&a).unwrap();
    }
    profile::set_enabled(false);
    let times = profile::snapshot();
    let of = |op: OpId| times.iter().find(|t| t.op == op).map(|t| t.calls);
    assert_eq!(of(OpId::Matmul), Some(3), "{times:?}");
    assert_eq!(of(OpId::Add), Some(3), "{times:?}");
    assert!(times.iter().all(|t| t.seconds > 0.0), "{times:?}");
    let families = profile::by_family(&times);
    assert!(families
        .iter()
        .any(|f| f.family == "matmul" && f.calls == 3));
    let s = profile::summary(&times);
    assert!(s.contains("matmul") && s.contains("add"), "{s}");

    profile::reset();
    assert!(profile::snapshot().is_empty());
}
