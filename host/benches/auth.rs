//! What authenticating a request costs before any Wasm runs, next to bare
//! JWT signature verification measured in the same run.
//!
//! `cargo bench -p baton --bench auth`

use baton::auth::admin_ops::{self, UserUpdate};
use baton::auth::tokens::{TokenKeys, TokenKind};
use baton::auth::{Auth, Credential, users};
use baton::manifest::Manifest;
use baton::store::SledStore;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

const PASSWORD: &str = "bench-password";

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = Manifest::parse(
        "[[listener]]\naddress = \"127.0.0.1:0\"\n",
        "bench",
        dir.path(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = Arc::new(SledStore::open(&dir.path().join("db")).unwrap());
    let auth = rt
        .block_on(Auth::open(&manifest, dir.path(), store, false))
        .unwrap();
    rt.block_on(admin_ops::apply(
        auth.users(),
        auth.roles(),
        "baton",
        "ann",
        UserUpdate {
            password: Some(PASSWORD.into()),
            roles: Some(vec!["operator".into()]),
            ..UserUpdate::default()
        },
    ))
    .unwrap();
    let keys = TokenKeys::load(&manifest, dir.path(), false).unwrap();
    let token = rt
        .block_on(auth.issue("ann", TokenKind::Access, 3600))
        .unwrap();
    let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let basic = Credential::Basic {
        user: "ann".into(),
        password: PASSWORD.into(),
    };
    rt.block_on(auth.authenticate(&basic, addr)).unwrap();
    let hash = rt
        .block_on(auth.users().get("ann"))
        .unwrap()
        .unwrap()
        .password_hash;

    let mut g = c.benchmark_group("authenticate");
    g.bench_function("baseline: HS256 signature + claims only", |b| {
        b.iter(|| keys.decode(black_box(&token), TokenKind::Access).unwrap())
    });
    g.bench_function("bearer token (+ revocation + current user)", |b| {
        b.iter(|| {
            rt.block_on(auth.principal_for_token(black_box(&token)))
                .unwrap()
        })
    });
    g.bench_function("basic, remembered credential", |b| {
        b.iter(|| {
            rt.block_on(auth.authenticate(black_box(&basic), addr))
                .unwrap()
        })
    });
    g.sample_size(10);
    g.bench_function("basic, first use (argon2id verify)", |b| {
        b.iter(|| assert!(users::verify_password_hash(black_box(&hash), PASSWORD)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
