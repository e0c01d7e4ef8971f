//! Every sshUsers operation through the library against the mock, with the API's error
//! codes surfacing in the errors.

use sshfleet_core::secret::Secret;
use sshfleet_core::shutdown::Shutdown;
use sshfleet_engine::equinix::bulk::{BulkDetach, Finished, Mode, Outcome};
use sshfleet_equinix::{Availability, Credentials, EquinixError, NewUser, PodStatus};
use sshfleet_sim::EquinixFaults;

use crate::equinix_support::{api, client, mock, sim_credentials};

#[tokio::test]
async fn get_returns_the_verbose_user_and_a_404_carries_its_code() {
    let fleet = mock(30, EquinixFaults::default()).await;
    let client = client(&fleet, sim_credentials());
    let want = api(&fleet).users()[3].clone();
    let got = client.get_user(&want.uuid).await.expect("found");
    assert_eq!(got.username, want.username);
    assert_eq!(got.device_uuids.as_ref(), Some(&want.devices));
    let statuses: Vec<(String, String)> = got
        .metros
        .iter()
        .map(|(pod, s)| (pod.clone(), s.as_str().to_owned()))
        .collect();
    let mut expected = want.metros.clone();
    expected.sort();
    assert_eq!(statuses, expected);
    assert!(got
        .metros
        .iter()
        .all(|(_, s)| !matches!(s, PodStatus::Other(_))));

    let err = client.get_user("no-such-user").await.expect_err("404");
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.api_codes(), ["RESOURCE_NOT_FOUND"]);
    assert!(
        err.to_string().contains("/ne/v1/sshUsers/no-such-user"),
        "{err}"
    );
}

#[tokio::test]
async fn availability_is_204_free_and_400_taken_with_the_reason() {
    let fleet = mock(5, EquinixFaults::default()).await;
    let client = client(&fleet, sim_credentials());
    assert_eq!(
        client.availability("fresh_name").await.expect("answer"),
        Availability::Available
    );
    let taken = api(&fleet).users()[0].username.clone();
    match client.availability(&taken).await.expect("answer") {
        Availability::Unavailable(problems) => {
            assert_eq!(problems[0].code.as_deref(), Some("SSH_USER_ALREADY_EXISTS"));
        }
        other => panic!("{other:?}"),
    }
    let odd = client.availability("a b&c").await.expect("answer");
    assert!(matches!(odd, Availability::Unavailable(_)), "{odd:?}");
}

#[tokio::test]
async fn create_set_password_attach_and_detach_round_trip() {
    let fleet = mock(5, EquinixFaults::default()).await;
    let client = client(&fleet, sim_credentials());
    let (device, inactive) = api(&fleet).devices();
    let other = api(&fleet).users()[0]
        .devices
        .first()
        .cloned()
        .unwrap_or_default();
    let user = NewUser {
        username: "auditor_1".into(),
        password: Secret::new("pass12"),
        device_uuid: device.clone(),
    };
    let uuid = client.create(&user).await.expect("created");
    assert!(api(&fleet).users().iter().any(|u| u.uuid == uuid));

    let again = client.create(&user).await.expect_err("exists");
    assert_eq!(again.api_codes(), ["SSH_USER_ALREADY_EXISTS"]);
    assert!(matches!(again, EquinixError::Api { status: 400, .. }));

    client
        .set_password(&uuid, &Secret::new("newPass_2"))
        .await
        .expect("password changed");
    client.attach(&uuid, &other).await.expect("attached");
    let bad = client
        .attach(&uuid, &inactive)
        .await
        .expect_err("inactive device");
    assert_eq!(bad.api_codes(), ["SSH_USER_DEVICE_STATE_NOT_VALID"]);

    let first = client.detach(&uuid, &device).await.expect("detached");
    assert!(first.association_deleted && !first.user_deleted);
    let last = client.detach(&uuid, &other).await.expect("detached");
    assert!(last.association_deleted && last.user_deleted);
    assert!(api(&fleet).users().iter().all(|u| u.uuid != uuid));
}

#[tokio::test]
async fn the_uuid_of_a_new_user_may_come_only_in_the_location_header() {
    let faults = EquinixFaults {
        created_uuid_in_location_only: true,
        ..EquinixFaults::default()
    };
    let fleet = mock(0, faults).await;
    let client = client(&fleet, sim_credentials());
    let (device, _) = api(&fleet).devices();
    let uuid = client
        .create(&NewUser {
            username: "located".into(),
            password: Secret::new("pass12"),
            device_uuid: device,
        })
        .await
        .expect("created");
    assert_eq!(api(&fleet).users()[0].uuid, uuid);
}

#[tokio::test]
async fn ids_that_would_change_the_path_are_refused_before_any_request() {
    let fleet = mock(1, EquinixFaults::default()).await;
    let client = client(&fleet, sim_credentials());
    for bad in ["../devices", "a/b", "x?y=1", ""] {
        let err = client.get_user(bad).await.expect_err("refused");
        assert!(
            matches!(err, EquinixError::InvalidInput { .. }),
            "{bad}: {err}"
        );
        let err = client.detach("u", bad).await.expect_err("refused");
        assert!(
            matches!(err, EquinixError::InvalidInput { .. }),
            "{bad}: {err}"
        );
    }
    assert_eq!(api(&fleet).stats().api_requests, 0);
}

#[tokio::test]
async fn association_calls_go_without_a_body_and_with_one_when_the_api_insists() {
    for needs_body in [false, true] {
        let faults = EquinixFaults {
            association_needs_body: needs_body,
            ..EquinixFaults::default()
        };
        let fleet = mock(3, faults).await;
        let client = client(&fleet, sim_credentials());
        let user = api(&fleet).users()[0].clone();
        let device = api(&fleet)
            .active_devices()
            .into_iter()
            .find(|d| !user.devices.contains(d))
            .expect("a free device");
        client.attach(&user.uuid, &device).await.expect("attached");
        let outcome = client.detach(&user.uuid, &device).await.expect("detached");
        assert!(outcome.association_deleted);
        let statuses: Vec<u16> = api(&fleet)
            .requests()
            .iter()
            .filter(|r| r.target.contains("/devices/"))
            .map(|r| r.status)
            .collect();
        let expected: &[u16] = if needs_body {
            &[415, 201, 415, 200]
        } else {
            &[201, 200]
        };
        assert_eq!(statuses, expected);
        // A refusal about the resource is not retried with a body.
        let again = client
            .detach(&user.uuid, &device)
            .await
            .expect_err("not attached");
        assert_eq!(again.status(), Some(400));
    }
}

/// A mock user on at least two devices, and how many entries share its name.
fn user_on_several_devices(fleet: &sshfleet_sim::Fleet) -> (sshfleet_sim::MockUser, usize) {
    let users = api(fleet).users();
    let user = users
        .iter()
        .find(|u| u.devices.len() >= 2)
        .cloned()
        .expect("a user on several devices");
    let entries = users.iter().filter(|u| u.username == user.username).count();
    (user, entries)
}

#[tokio::test]
async fn bulk_plan_pairs_the_exactly_named_entries_with_their_devices() {
    let fleet = mock(120, EquinixFaults::default()).await;
    let (user, entries) = user_on_several_devices(&fleet);
    let plan = BulkDetach::plan(client(&fleet, sim_credentials()), &user.username)
        .await
        .expect("listed");
    assert_eq!(plan.entries, entries);
    let mine: Vec<&str> = plan
        .targets
        .iter()
        .filter(|t| t.user_uuid == user.uuid)
        .map(|t| t.device_uuid.as_str())
        .collect();
    assert_eq!(
        mine,
        user.devices.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(plan.targets.iter().all(|t| t.username == user.username));
}

#[tokio::test]
async fn bulk_a_failed_fetch_is_an_error_not_an_empty_list() {
    let fleet = mock(20, EquinixFaults::default()).await;
    let (user, _) = user_on_several_devices(&fleet);
    let wrong = Credentials::Client {
        id: "sim-client".into(),
        secret: Secret::new("wrong-secret"),
    };
    let failed = BulkDetach::plan(client(&fleet, wrong), &user.username).await;
    assert!(failed.is_err(), "{failed:?}");
    let nobody = BulkDetach::plan(client(&fleet, sim_credentials()), "nobody_here")
        .await
        .expect("an empty listing is fine");
    assert_eq!((nobody.entries, nobody.targets.len()), (0, 0));
}

#[tokio::test]
async fn bulk_run_plans_without_apply_stops_on_the_signal_and_detaches_with_it() {
    let fleet = mock(20, EquinixFaults::default()).await;
    let (user, _) = user_on_several_devices(&fleet);
    let client = client(&fleet, sim_credentials());
    let plan = BulkDetach::from_users(&[client.get_user(&user.uuid).await.expect("user")]);
    let deletes = || {
        api(&fleet)
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .count()
    };
    let mut seen = Vec::new();
    let dry = plan
        .run(&client, Mode::DryRun, &Shutdown::never(), |t, o| {
            seen.push((t.device_uuid.clone(), matches!(o, Outcome::Planned)));
            Ok::<_, ()>(())
        })
        .await;
    assert_eq!(dry, Ok(Finished::Done { failed: 0 }));
    let all_planned: Vec<_> = user.devices.iter().map(|d| (d.clone(), true)).collect();
    assert_eq!(seen, all_planned);
    assert_eq!(deletes(), 0);

    let (trigger, stop) = sshfleet_core::shutdown::channel();
    trigger.trigger();
    let stopped = plan
        .run(&client, Mode::Apply, &stop, |_, _| {
            Err("no outcome expected")
        })
        .await;
    assert_eq!(stopped, Ok(Finished::Interrupted));
    assert_eq!(deletes(), 0);

    let mut done = Vec::new();
    let applied = plan
        .run(&client, Mode::Apply, &Shutdown::never(), |_, o| match o {
            Outcome::Detached(d) => {
                done.push(d.user_deleted);
                Ok(())
            }
            other => Err(format!("{other:?}")),
        })
        .await;
    assert_eq!(applied, Ok(Finished::Done { failed: 0 }));
    assert_eq!(done.last(), Some(&true), "the last detach takes the user");
    assert_eq!(done.len(), user.devices.len());
    assert!(api(&fleet).users().iter().all(|u| u.uuid != user.uuid));
    let again = plan
        .run(&client, Mode::Apply, &Shutdown::never(), |_, _| {
            Ok::<_, ()>(())
        })
        .await;
    assert_eq!(
        again,
        Ok(Finished::Done {
            failed: user.devices.len()
        })
    );
}
