//! Admission request decoding: the bytes of a `POST /mutate-pods` body decoded as the
//! webhook does (`controller::webhook::answer`: an `admission.k8s.io/v1` AdmissionReview
//! of a `DynamicObject`, its request), `admission::review`, and the response encoded.
#![no_main]

use fuzz_common::measured;
use gpu_slicer::admission::{Policy, review};
use gpu_slicer::guard::Namespaces;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview, META_API_VERSION_V1, META_KIND};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = Policy {
        namespaces: Namespaces {
            allow: Vec::new(),
            deny: vec!["kube-system".to_string()],
        },
        // Both settings are reached: the first byte picks (an input of any first byte
        // still decodes only when it is `{` or whitespace, so most inputs take `false`).
        fail_requests_greater_than_one: data.first().is_some_and(|b| *b == b' '),
        context_memory_mib: gpu_slicer::model::DEFAULT_CONTEXT_MEMORY_MIB,
        // Both readings of shares, picked by the second byte the same way.
        share_model: if data.get(1).is_some_and(|b| *b == b' ') {
            gpu_slicer::model::slice::ShareModel::Throughput
        } else {
            gpu_slicer::model::slice::ShareModel::Time
        },
    };
    measured("admission::review", data.len(), || {
        let Ok(rev) = serde_json::from_slice::<AdmissionReview<DynamicObject>>(data) else {
            return;
        };
        if rev.types.api_version != META_API_VERSION_V1 || rev.types.kind != META_KIND {
            return;
        }
        let Ok(req): Result<AdmissionRequest<DynamicObject>, _> = rev.try_into() else {
            return;
        };
        let resp = review(&req, &policy);
        let _ = serde_json::to_vec(&resp.into_review());
    });
});
