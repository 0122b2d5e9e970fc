//! The leak sweep's evidence: everything the product wrote or answered (logs, response bodies,
//! every attribute of every item in every table, every S3 object, the model's requests), each
//! with the audience that may see it, and the rule that says which canary may appear where.

#![allow(dead_code)] // each test target uses its own subset of these helpers

pub mod canary;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
pub use canary::{Canary, Finder, Owner};

/// Who may see an exhibit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The model, called for one tenant: the request Bedrock receives holds every part of that
    /// tenant's prompt.
    Model(String),
    /// One tenant: its responses, its payload records, its export.
    Tenant(String),
    /// The ISV's operations: logs, metrics, metadata and every other store.
    Operations,
}

impl Audience {
    /// Whether `canary` may appear in what this audience sees: ISV text only in the model's
    /// request, a tenant's text there and in what is the tenant's own, never-sent text nowhere.
    fn may_see(&self, canary: &Canary) -> bool {
        match (self, &canary.owner) {
            (_, Owner::Never) => false,
            (Self::Model(_), Owner::Isv) => true,
            (Self::Model(audience) | Self::Tenant(audience), Owner::Tenant(owner)) => {
                audience == owner
            }
            _ => false,
        }
    }
}

/// One thing the product produced.
pub struct Exhibit {
    pub audience: Audience,
    pub place: String,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
pub struct Evidence {
    pub exhibits: Vec<Exhibit>,
}

impl Evidence {
    pub fn add(&mut self, audience: Audience, place: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.exhibits.push(Exhibit {
            audience,
            place: place.into(),
            bytes: bytes.into(),
        });
    }

    /// Every attribute (name and value) of every item of every table: a payload record's
    /// attributes are its tenant's (by the item's `tenant_id`) if the tenant opted in, everything
    /// else is operations'.
    pub async fn add_tables(
        &mut self,
        ddb: &aws_sdk_dynamodb::Client,
        tables: impl IntoIterator<Item = (&str, &str)>,
        opted_in: &[&str],
    ) {
        for (logical_id, name) in tables {
            let items: Vec<_> = ddb
                .scan()
                .table_name(name)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<_, _>>()
                .await
                .unwrap_or_else(|e| panic!("scanning {name}: {e:?}"));
            for item in items {
                let tenant = item.get("tenant_id").and_then(|v| v.as_s().ok());
                let audience = match tenant {
                    Some(t)
                        if logical_id == "PayloadRecordsTable"
                            && opted_in.contains(&t.as_str()) =>
                    {
                        Audience::Tenant(t.clone())
                    }
                    _ => Audience::Operations,
                };
                let key = tenant.map_or("?", String::as_str);
                self.add_item(audience, &format!("{logical_id} item of {key}"), &item);
            }
        }
    }

    /// Every attribute of one item, its name and its value.
    pub fn add_item(
        &mut self,
        audience: Audience,
        place: &str,
        item: &HashMap<String, AttributeValue>,
    ) {
        for (attribute, value) in item {
            let place = format!("{place}, attribute {attribute}");
            let name = attribute.clone().into_bytes();
            for bytes in std::iter::once(name).chain(attribute_bytes(value)) {
                self.add(audience.clone(), place.clone(), bytes);
            }
        }
    }

    /// Every object of every one of `buckets` (the emulator is shared with other tests, whose
    /// buckets are theirs), with the audience `owner` gives its bucket and key.
    pub async fn add_buckets(
        &mut self,
        s3: &aws_sdk_s3::Client,
        buckets: &[&str],
        owner: impl Fn(&str, &str) -> Audience,
    ) {
        for &bucket in buckets {
            let objects: Vec<_> = s3
                .list_objects_v2()
                .bucket(bucket)
                .into_paginator()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .unwrap_or_else(|e| panic!("listing {bucket}: {e:?}"));
            for key in objects
                .iter()
                .flat_map(|page| page.contents())
                .filter_map(|o| o.key())
            {
                let body = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .expect("reading an object")
                    .body
                    .collect()
                    .await
                    .expect("reading an object's body")
                    .into_bytes();
                self.add(owner(bucket, key), format!("s3://{bucket}/{key}"), body);
            }
        }
    }

    /// Each canary found where its owner's text does not belong, described.
    pub fn violations(&self, canaries: &[Canary]) -> Vec<String> {
        let finder = Finder::new(canaries);
        let mut out = Vec::new();
        for exhibit in &self.exhibits {
            for sighting in finder.find(&exhibit.bytes) {
                let canary = &canaries[sighting.canary];
                if !exhibit.audience.may_see(canary) {
                    out.push(format!(
                        "{} ({}) found in {} ({:?}), {}",
                        canary.label(),
                        canary.token,
                        exhibit.place,
                        exhibit.audience,
                        sighting.form
                    ));
                }
            }
        }
        out
    }

    /// The places `canary` was found in, for an audience.
    pub fn sightings(&self, canary: &Canary, audience: &Audience) -> Vec<&str> {
        let finder = Finder::new(std::slice::from_ref(canary));
        self.exhibits
            .iter()
            .filter(|e| &e.audience == audience && !finder.find(&e.bytes).is_empty())
            .map(|e| e.place.as_str())
            .collect()
    }
}

/// An attribute's value as the byte strings it holds: names and values of maps, members of
/// lists and sets, binary values as stored.
fn attribute_bytes(value: &AttributeValue) -> Vec<Vec<u8>> {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => vec![s.clone().into_bytes()],
        AttributeValue::B(b) => vec![b.as_ref().to_vec()],
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => {
            v.iter().map(|s| s.clone().into_bytes()).collect()
        }
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().to_vec()).collect(),
        AttributeValue::L(v) => v.iter().flat_map(attribute_bytes).collect(),
        AttributeValue::M(m) => m
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone().into_bytes()).chain(attribute_bytes(v)))
            .collect(),
        _ => Vec::new(),
    }
}
