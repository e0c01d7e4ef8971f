//! The seeded fleet mixes: which cameras get which fault, firmware and auth profile, and which
//! have SSH enabled. Counts are exact per mix (cumulative rounding), positions are shuffled.

use super::spec::{DeviceAuth, DeviceSpec, Fault, Firmware, SshFault};
use super::AuthPolicy;

/// Share of cameras with SSH enabled, in per mille, for every profile.
const SSH_ENABLED_PER_MILLE: u64 = 300;

/// One kind of deviation from a clean camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Fault(Fault),
    Firmware(Firmware),
    Auth(DeviceAuth),
    Ssh(SshFault),
}

/// The realistic mix in per mille of the fleet; the rest is clean. Faults sum to 150 ‰ (15 %),
/// firmware variety to 60 ‰, authentication variety to 40 ‰ and SSH port faults to 40 ‰,
/// on top of the faults. New entries go last: the cameras of the earlier ones stay put.
const REALISTIC: [(Slot, u64); 20] = [
    (Slot::Fault(Fault::Slow), 35),
    (Slot::Fault(Fault::Hang), 10),
    (Slot::Fault(Fault::Closed), 20),
    (Slot::Fault(Fault::Reset), 10),
    (Slot::Fault(Fault::MalformedJson), 10),
    (Slot::Fault(Fault::Oversized), 5),
    (Slot::Fault(Fault::WrongPassword), 25),
    (Slot::Fault(Fault::Throttled), 10),
    (Slot::Fault(Fault::InternalError), 10),
    (Slot::Fault(Fault::NoAdmin), 15),
    (Slot::Firmware(Firmware::ParamOnly), 40),
    (Slot::Firmware(Firmware::Ancient), 10),
    (Slot::Firmware(Firmware::V2Only), 10),
    (Slot::Auth(DeviceAuth::DigestNoQop), 20),
    (Slot::Auth(DeviceAuth::DigestSha256), 10),
    (Slot::Auth(DeviceAuth::DigestMd5Sess), 10),
    (Slot::Ssh(SshFault::Firewalled), 20),
    (Slot::Ssh(SshFault::StrayListener), 10),
    (Slot::Ssh(SshFault::Trickle), 5),
    (Slot::Ssh(SshFault::EndlessLine), 5),
];

/// Clean modern cameras; only the SSH state varies.
pub(crate) fn clean(devices: usize, seed: u64) -> Vec<DeviceSpec> {
    let mut rng = fastrand::Rng::with_seed(seed);
    enabled_flags(devices, &mut rng)
        .into_iter()
        .map(DeviceSpec::clean)
        .collect()
}

/// The realistic mix for `devices` cameras. Under `AuthPolicy::Basic` or `None` the
/// authentication variety is dropped (those cameras are clean), and under `None` so is
/// `WrongPassword`, which cannot show without authentication.
pub(crate) fn realistic(devices: usize, seed: u64, policy: AuthPolicy) -> Vec<DeviceSpec> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut slots = slot_list(devices);
    rng.shuffle(&mut slots);
    let enabled = enabled_flags(devices, &mut rng);
    slots
        .into_iter()
        .zip(enabled)
        .map(|(slot, on)| apply(slot, on, policy))
        .collect()
}

/// Exactly `round(cumulative ‰ × n)` cameras up to each mix entry, the rest clean, unshuffled.
fn slot_list(devices: usize) -> Vec<Option<Slot>> {
    let n = devices as u64;
    let mut out = Vec::with_capacity(devices);
    let mut cumulative = 0;
    for (slot, per_mille) in REALISTIC {
        cumulative += per_mille;
        let upto = rounded_share(n, cumulative) as usize;
        out.resize(upto.max(out.len()), Some(slot));
    }
    out.resize(devices, None);
    out
}

fn rounded_share(n: u64, per_mille: u64) -> u64 {
    (n * per_mille + 500) / 1000
}

fn enabled_flags(devices: usize, rng: &mut fastrand::Rng) -> Vec<bool> {
    let on = rounded_share(devices as u64, SSH_ENABLED_PER_MILLE) as usize;
    let mut flags: Vec<bool> = (0..devices).map(|i| i < on).collect();
    rng.shuffle(&mut flags);
    flags
}

fn apply(slot: Option<Slot>, ssh_enabled: bool, policy: AuthPolicy) -> DeviceSpec {
    let mut spec = DeviceSpec::clean(ssh_enabled);
    match slot {
        Some(Slot::Fault(Fault::WrongPassword)) if policy == AuthPolicy::None => {}
        Some(Slot::Fault(fault)) => spec.fault = fault,
        Some(Slot::Firmware(firmware)) => spec.firmware = firmware,
        Some(Slot::Auth(auth)) if policy == AuthPolicy::Digest => spec.auth = auth,
        Some(Slot::Ssh(ssh)) => spec.ssh = ssh,
        Some(Slot::Auth(_)) | None => {}
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(specs: &[DeviceSpec], pred: impl Fn(&DeviceSpec) -> bool) -> f64 {
        specs.iter().filter(|s| pred(s)).count() as f64 / specs.len() as f64
    }

    #[test]
    fn realistic_mix_is_deterministic_for_a_seed() {
        let a = realistic(2000, 7, AuthPolicy::Digest);
        assert_eq!(a, realistic(2000, 7, AuthPolicy::Digest));
        assert_ne!(a, realistic(2000, 8, AuthPolicy::Digest));
    }

    #[test]
    fn realistic_mix_faults_about_fifteen_percent() {
        for devices in [1000, 1234, 20_000] {
            let specs = realistic(devices, 42, AuthPolicy::Digest);
            let faulty = share(&specs, |s| s.fault != Fault::None);
            assert!((0.145..=0.155).contains(&faulty), "{devices}: {faulty}");
            let enabled = share(&specs, |s| s.ssh_enabled);
            assert!((0.29..=0.31).contains(&enabled), "{devices}: {enabled}");
        }
    }

    #[test]
    fn realistic_mix_is_spread_over_the_fleet() {
        let specs = realistic(1000, 3, AuthPolicy::Digest);
        for half in specs.chunks(500) {
            let faulty = share(half, |s| s.fault != Fault::None);
            assert!((0.10..=0.20).contains(&faulty), "{faulty}");
        }
    }

    #[test]
    fn every_kind_appears_in_a_thousand_devices() {
        let specs = realistic(1000, 1, AuthPolicy::Digest);
        for (slot, per_mille) in REALISTIC {
            let count = specs
                .iter()
                .filter(|s| match slot {
                    Slot::Fault(f) => s.fault == f,
                    Slot::Firmware(f) => s.firmware == f,
                    Slot::Auth(a) => s.auth == a,
                    Slot::Ssh(f) => s.ssh == f,
                })
                .count();
            assert_eq!(count as u64, per_mille, "{slot:?}");
        }
    }

    #[test]
    fn without_authentication_wrong_passwords_and_auth_variety_vanish() {
        let specs = realistic(1000, 1, AuthPolicy::None);
        assert!(specs.iter().all(|s| s.fault != Fault::WrongPassword));
        assert!(specs.iter().all(|s| s.auth == DeviceAuth::Policy));
    }

    #[test]
    fn clean_fleet_has_thirty_percent_enabled() {
        let specs = clean(100, 5);
        assert_eq!(specs.iter().filter(|s| s.ssh_enabled).count(), 30);
        assert!(specs.iter().all(|s| s.label() == "none"));
    }
}
