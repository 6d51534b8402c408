//! Every kernel of every tier this machine has, against the portable
//! kernel: bit for bit where the math is exact, within a few ulp for the
//! `exp`-based approximations. Lengths cover the empty slice, one element,
//! and every tail length of every vector width.

use sunrise_backend_api::OpId;

use super::kernels::{bin_slot, table_for, un_slot, Table};
use crate::isa::{self, Isa};
use crate::testing::Rng;

const LENGTHS: &[usize] = &[
    0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257, 1000,
];

/// Random values in `[lo, hi)`, with NaN, infinities and signed zeros
/// sprinkled in when `special`.
fn data(rng: &mut Rng, n: usize, lo: f64, hi: f64, special: bool) -> Vec<f32> {
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1e-40,
        -1e-40,
    ];
    (0..n)
        .map(|_| {
            if special && rng.next_u64().is_multiple_of(8) {
                specials[(rng.next_u64() % specials.len() as u64) as usize]
            } else {
                rng.uniform(lo, hi) as f32
            }
        })
        .collect()
}

/// Distance in units in the last place (both NaN: 0; one NaN: max).
fn ulps(a: f32, b: f32) -> u32 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u32::MAX
        };
    }
    let key = |v: f32| {
        let i = v.to_bits() as i32;
        if i < 0 {
            i32::MIN.wrapping_sub(i) as i64
        } else {
            i as i64
        }
    };
    (key(a) - key(b)).unsigned_abs().min(u32::MAX as u64) as u32
}

fn check(what: &str, tier: Isa, x: &[f32], got: &[f32], want: &[f32], max_ulps: u32) {
    for i in 0..want.len() {
        let d = ulps(got[i], want[i]);
        assert!(
            d <= max_ulps,
            "{tier} {what} len {}: element {i} (x = {:e}): got {:e}, portable {:e} ({d} ulp)",
            want.len(),
            x[i],
            got[i],
            want[i]
        );
    }
}

fn tiers() -> Vec<(Isa, Table)> {
    let portable = table_for(Isa::Portable);
    assert_eq!(portable.tier, Isa::Portable);
    isa::available_tiers()
        .into_iter()
        .filter(|&t| t != Isa::Portable)
        .map(|t| {
            let table = table_for(t);
            assert_eq!(table.tier, t, "table_for({t}) installed {}", table.tier);
            (t, table)
        })
        .collect()
}

#[test]
fn binary_kernels_are_bit_identical_to_portable() {
    let portable = table_for(Isa::Portable);
    let mut rng = Rng::new(1);
    let ops = [
        OpId::Add,
        OpId::Sub,
        OpId::Mul,
        OpId::Div,
        OpId::Maximum,
        OpId::Minimum,
    ];
    for (tier, table) in tiers() {
        for op in ops {
            let (k, p) = (table.binary[bin_slot(op)], portable.binary[bin_slot(op)]);
            for &n in LENGTHS {
                let a = data(&mut rng, n, -4.0, 4.0, true);
                let b = data(&mut rng, n, -4.0, 4.0, true);
                let s = data(&mut rng, 1, -4.0, 4.0, false)[0];
                let (mut got, mut want) = (vec![0f32; n], vec![0f32; n]);
                // SAFETY: table_for installs only kernels this CPU supports.
                unsafe {
                    (k.vv)(&a, &b, &mut got);
                    (p.vv)(&a, &b, &mut want);
                }
                check(&format!("{op} vv"), tier, &a, &got, &want, 0);
                // SAFETY: as above.
                unsafe {
                    (k.vs)(&a, s, &mut got);
                    (p.vs)(&a, s, &mut want);
                }
                check(&format!("{op} vs"), tier, &a, &got, &want, 0);
                // SAFETY: as above.
                unsafe {
                    (k.sv)(s, &b, &mut got);
                    (p.sv)(s, &b, &mut want);
                }
                check(&format!("{op} sv"), tier, &b, &got, &want, 0);
            }
        }
    }
}

#[test]
fn unary_kernels_match_portable() {
    let portable = table_for(Isa::Portable);
    let mut rng = Rng::new(2);
    // (op, input range, ulp bound: 0 where the math is exact). The bounds
    // for the exp family cover the polynomial (~1 ulp), libm's reference
    // (~0.5 ulp), and the roundings of the formula built on exp. The
    // portable gelu_erf is computed in f64; the SIMD one (erfc as
    // e^(-z^2) t P(t)) stays within 6 ulp of it over the whole range, the
    // far negative tail included.
    let cases = [
        (OpId::Neg, (-5.0, 5.0), 0),
        (OpId::Abs, (-5.0, 5.0), 0),
        (OpId::Relu, (-5.0, 5.0), 0),
        (OpId::Sqrt, (0.0, 100.0), 0),
        (OpId::Rsqrt, (0.0, 100.0), 0),
        (OpId::Exp, (-100.0, 89.0), 2),
        (OpId::Exp, (-3.0, 3.0), 2),
        (OpId::Sigmoid, (-20.0, 20.0), 3),
        (OpId::Silu, (-20.0, 20.0), 3),
        (OpId::Tanh, (-1.0, 1.0), 3),
        (OpId::Tanh, (-12.0, 12.0), 3),
        (OpId::Log, (0.0, 10.0), 0),
        (OpId::GeluErf, (-5.0, 5.0), 6),
        (OpId::GeluErf, (-14.0, 14.0), 6),
    ];
    for (tier, table) in tiers() {
        for (op, (lo, hi), max_ulps) in cases {
            let (k, p) = (table.unary[un_slot(op)], portable.unary[un_slot(op)]);
            for &n in LENGTHS {
                for special in [false, true] {
                    let x = data(&mut rng, n, lo, hi, special);
                    let (mut got, mut want) = (vec![0f32; n], vec![0f32; n]);
                    // SAFETY: table_for installs only kernels this CPU supports.
                    unsafe {
                        k(&x, &mut got);
                        p(&x, &mut want);
                    }
                    check(&op.to_string(), tier, &x, &got, &want, max_ulps);
                }
            }
        }
    }
}

#[test]
fn gelu_tanh_matches_portable_within_its_conditioning() {
    // gelu_tanh(x) = x / (1 + e^(-2u)): the three roundings in computing u
    // in f32 move e^(-2u) by a relative ~1.5 |2u| ulp in each kernel (the
    // SIMD one fuses some of them), so the two may differ by ~3 |2u| ulp
    // where e^(-2u) dominates (the negative tail); elsewhere by a few ulp.
    let portable = table_for(Isa::Portable);
    let mut rng = Rng::new(3);
    for (tier, table) in tiers() {
        let x = data(&mut rng, 1000, -8.0, 8.0, true);
        let (mut got, mut want) = (vec![0f32; 1000], vec![0f32; 1000]);
        // SAFETY: table_for installs only kernels this CPU supports.
        unsafe {
            table.unary[un_slot(OpId::GeluTanh)](&x, &mut got);
            portable.unary[un_slot(OpId::GeluTanh)](&x, &mut want);
        }
        for i in 0..x.len() {
            let two_u = 2.0 * 0.8 * x[i].abs() * (1.0 + 0.045 * x[i] * x[i]);
            let bound = ((3.0 * two_u) as u32).saturating_add(4);
            check(
                "gelu_tanh",
                tier,
                &x[i..=i],
                &got[i..=i],
                &want[i..=i],
                bound,
            );
        }
    }
}

#[test]
fn relu_backward_is_bit_identical_to_portable() {
    let portable = table_for(Isa::Portable);
    let mut rng = Rng::new(4);
    for (tier, table) in tiers() {
        for &n in LENGTHS {
            let x = data(&mut rng, n, -2.0, 2.0, true);
            let dy = data(&mut rng, n, -2.0, 2.0, true);
            let (mut got, mut want) = (vec![0f32; n], vec![0f32; n]);
            // SAFETY: table_for installs only kernels this CPU supports.
            unsafe {
                (table.relu_backward)(&x, &dy, &mut got);
                (portable.relu_backward)(&x, &dy, &mut want);
            }
            check("relu_backward", tier, &x, &got, &want, 0);
        }
    }
}

#[test]
fn kernels_never_write_past_the_shortest_slice() {
    for (tier, table) in tiers() {
        let a = vec![1f32; 37];
        let b = vec![2f32; 35];
        let mut out = vec![-7f32; 40];
        // SAFETY: table_for installs only kernels this CPU supports.
        unsafe { (table.binary[bin_slot(OpId::Add)].vv)(&a, &b, &mut out) };
        assert!(out[..35].iter().all(|&v| v == 3.0), "{tier}");
        assert!(out[35..].iter().all(|&v| v == -7.0), "{tier}");
        let mut out = vec![-7f32; 40];
        // SAFETY: as above.
        unsafe { table.unary[un_slot(OpId::Exp)](&a[..33], &mut out) };
        assert!(out[33..].iter().all(|&v| v == -7.0), "{tier}");
    }
}

#[test]
fn streaming_kernels_match_the_plain_ones_at_every_alignment() {
    // The streaming kernels peel a head up to a cache-line boundary of the
    // output: every output offset 0..16 and every tail length must give
    // the plain kernel's bits, and write nothing outside the output.
    let mut rng = Rng::new(5);
    for (tier, table) in tiers() {
        for &n in LENGTHS.iter().chain(&[4099]) {
            let a = data(&mut rng, n, -4.0, 4.0, true);
            let b = data(&mut rng, n, -4.0, 4.0, true);
            for off in 0..16 {
                for op in [OpId::Add, OpId::Maximum, OpId::Div] {
                    let (k, nt) = (table.binary[bin_slot(op)], table.binary_nt[bin_slot(op)]);
                    let mut want = vec![0f32; n];
                    let mut got = vec![-7f32; n + 32];
                    // SAFETY: table_for installs only kernels this CPU supports.
                    unsafe {
                        (k.vv)(&a, &b, &mut want);
                        (nt.vv)(&a, &b, &mut got[off..off + n]);
                    }
                    check(
                        &format!("{op} vv nt @{off}"),
                        tier,
                        &a,
                        &got[off..],
                        &want,
                        0,
                    );
                    assert!(got[..off].iter().chain(&got[off + n..]).all(|&v| v == -7.0));
                    // SAFETY: as above.
                    unsafe {
                        (k.vs)(&a, 0.5, &mut want);
                        (nt.vs)(&a, 0.5, &mut got[off..off + n]);
                    }
                    check(
                        &format!("{op} vs nt @{off}"),
                        tier,
                        &a,
                        &got[off..],
                        &want,
                        0,
                    );
                    // SAFETY: as above.
                    unsafe {
                        (k.sv)(0.5, &b, &mut want);
                        (nt.sv)(0.5, &b, &mut got[off..off + n]);
                    }
                    check(
                        &format!("{op} sv nt @{off}"),
                        tier,
                        &b,
                        &got[off..],
                        &want,
                        0,
                    );
                }
                for op in [OpId::Relu, OpId::Exp, OpId::Neg] {
                    let (k, nt) = (table.unary[un_slot(op)], table.unary_nt[un_slot(op)]);
                    let mut want = vec![0f32; n];
                    let mut got = vec![-7f32; n + 32];
                    // SAFETY: as above.
                    unsafe {
                        k(&a, &mut want);
                        nt(&a, &mut got[off..off + n]);
                    }
                    check(&format!("{op} nt @{off}"), tier, &a, &got[off..], &want, 0);
                    assert!(got[..off].iter().chain(&got[off + n..]).all(|&v| v == -7.0));
                }
            }
        }
    }
}

#[test]
fn large_contiguous_outputs_pick_the_streaming_kernels() {
    let t = super::kernels::table();
    let big = super::kernels::stream_threshold();
    let slot = bin_slot(OpId::Add);
    assert_eq!(
        t.binary_for(OpId::Add, big, true).vv as usize,
        t.binary_nt[slot].vv as usize
    );
    assert_eq!(
        t.binary_for(OpId::Add, big, false).vv as usize,
        t.binary[slot].vv as usize
    );
    assert_eq!(
        t.binary_for(OpId::Add, 1024, true).vv as usize,
        t.binary[slot].vv as usize
    );
    let u = un_slot(OpId::Relu);
    assert_eq!(
        t.unary_for(OpId::Relu, big, true) as usize,
        t.unary_nt[u] as usize
    );
    assert_eq!(
        t.unary_for(OpId::Relu, 1024, true) as usize,
        t.unary[u] as usize
    );
    assert!(big >= 1 << 16, "{big}");
}

#[test]
fn the_active_table_is_the_active_tier() {
    assert_eq!(super::kernels::table().tier, isa::tier());
}

/// Best of 7 runs of `f`, in seconds.
fn best(f: &mut dyn FnMut()) -> f64 {
    f();
    (0..7)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// f32 `add` of 1e7 elements per tier (one thread) and through the op
/// (thread pool), against `copy_from_slice` of the same bytes; GB/s count
/// bytes read plus written. Run with `cargo test --release -p
/// sunrise-backend-cpu --lib add_bandwidth -- --ignored --nocapture`.
#[test]
#[ignore = "timing for reports, not a pass/fail check"]
fn add_bandwidth() {
    use crate::testing::{run, HostTensor};
    use sunrise_backend_api::Params;
    const N: usize = 10_000_000;
    let a = vec![1.5f32; N];
    let b = vec![2.5f32; N];
    let mut c = vec![0f32; N];
    let gbs = |bytes: usize, s: f64| bytes as f64 / s / 1e9;
    let copy = best(&mut || c.copy_from_slice(&a));
    println!("1e7 f32, one thread:");
    println!("  memcpy        {:6.1} GB/s", gbs(8 * N, copy));
    for t in isa::available_tiers() {
        let k = table_for(t).binary[bin_slot(OpId::Add)].vv;
        // SAFETY: table_for installs only kernels this CPU supports.
        let s = best(&mut || unsafe { k(&a, &b, &mut c) });
        println!(
            "  add {:<9} {:6.1} GB/s ({:.0}% of memcpy)",
            t.name(),
            gbs(12 * N, s),
            100.0 * gbs(12 * N, s) / gbs(8 * N, copy)
        );
    }
    let (ta, tb, tc) = (
        HostTensor::new(&a, &[N]),
        HostTensor::new(&b, &[N]),
        HostTensor::zeros::<f32>(&[N]),
    );
    let s = best(&mut || run(OpId::Add, Params::None, &[&ta, &tb], &[&tc]).unwrap());
    let sc = best(&mut || run(OpId::Copy, Params::None, &[&ta], &[&tc]).unwrap());
    println!(
        "1e7 f32 through the op, {} threads, tier {}: add {:.1} GB/s, copy {:.1} GB/s",
        crate::threads::num_threads(),
        isa::tier(),
        gbs(12 * N, s),
        gbs(8 * N, sc)
    );
}

/// Per-tier speed of a few f32 kernels on 64Ki cache-resident elements,
/// one thread. Run with `cargo test --release -p sunrise-backend-cpu --lib
/// tier_speedups -- --ignored --nocapture`.
#[test]
#[ignore = "timing for reports, not a pass/fail check"]
fn tier_speedups() {
    const M: usize = 1 << 16;
    let mut rng = Rng::new(9);
    let x = data(&mut rng, M, -4.0, 4.0, false);
    println!("64Ki f32, one thread, Gelem/s per tier:");
    for op in [
        OpId::Add,
        OpId::Relu,
        OpId::Exp,
        OpId::Sigmoid,
        OpId::Tanh,
        OpId::GeluTanh,
        OpId::GeluErf,
    ] {
        let mut line = format!("  {:<10}", op.name());
        for t in isa::available_tiers() {
            let table = table_for(t);
            let mut y = vec![0f32; M];
            let s = if op == OpId::Add {
                let k = table.binary[bin_slot(op)].vv;
                // SAFETY: table_for installs only kernels this CPU supports.
                best(&mut || unsafe { k(&x, &x, &mut y) })
            } else {
                let k = table.unary[un_slot(op)];
                // SAFETY: as above.
                best(&mut || unsafe { k(&x, &mut y) })
            };
            line += &format!(" {}={:.2}", t.name(), M as f64 / s / 1e9);
        }
        println!("{line}");
    }
}
