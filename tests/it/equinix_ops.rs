//! Every sshUsers operation through the library against the mock, with the API's error
//! codes surfacing in the errors.

use sshfleet::equinix::{Availability, EquinixError, NewUser, PodStatus};
use sshfleet::secret::Secret;
use sshfleet::sim::EquinixFaults;

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
