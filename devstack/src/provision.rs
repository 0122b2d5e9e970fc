//! Provisioning through the AWS SDK: template.yaml's DynamoDB tables, S3 and S3 Vectors buckets
//! and KMS keys created in the emulator, named as a CloudFormation stack of a given name would name them, and the SDK
//! configuration that reaches the emulator.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use promptseal::store::sealed::SealedTables;
use serde_yaml_ng::Value;

use crate::{
    ACCESS_KEY, ACCOUNT_ID, LocalStack, REGION, SECRET_KEY, endpoint_from_env, reference,
    unique_name,
};

impl LocalStack {
    /// An SDK configuration for the emulator.
    pub async fn sdk_config(&self) -> SdkConfig {
        emulator_config(&self.aws_endpoint).await
    }
}

/// An SDK configuration for an emulator at `endpoint`, with its dummy credentials.
pub async fn emulator_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            ACCESS_KEY,
            SECRET_KEY,
            None,
            None,
            "promptseal-devstack",
        ))
        .load()
        .await
}

/// What provisioning created, by template.yaml logical id.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    pub stack_name: String,
    /// Table logical id → table name.
    pub tables: BTreeMap<String, String>,
    /// Key logical id → alias name (`alias/...`), for keys that template.yaml gives an alias.
    pub key_aliases: BTreeMap<String, String>,
    /// Bucket logical id (S3 or S3 Vectors) → bucket name.
    pub buckets: BTreeMap<String, String>,
}

impl Resources {
    pub fn table(&self, logical_id: &str) -> &str {
        self.tables
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml declares no table {logical_id}"))
    }

    pub fn bucket(&self, logical_id: &str) -> &str {
        self.buckets
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml declares no bucket {logical_id}"))
    }

    pub fn key_alias(&self, logical_id: &str) -> &str {
        self.key_aliases
            .get(logical_id)
            .unwrap_or_else(|| panic!("template.yaml declares no alias for key {logical_id}"))
    }

    /// Where the sealed stores live in this stack.
    pub fn sealed_tables(&self) -> SealedTables {
        SealedTables {
            templates_table: self.table("TemplatesTable").to_owned(),
            template_key_id: self.key_alias("TemplateKey").to_owned(),
            fingerprints_table: self.table("FingerprintsTable").to_owned(),
            fingerprint_key_id: self.key_alias("FingerprintKey").to_owned(),
        }
    }

    /// The configuration variables the functions and the CLI read, named after the logical ids:
    /// `TemplatesTable` → `TEMPLATES_TABLE`, `VectorBucket` → `VECTOR_BUCKET`, `TemplateKey` →
    /// `TEMPLATE_KEY_ID`.
    pub fn env(&self) -> Vec<(String, String)> {
        let tables = self
            .tables
            .iter()
            .chain(&self.buckets)
            .map(|(id, name)| (screaming_snake(id), name.clone()));
        let keys = self
            .key_aliases
            .iter()
            .map(|(id, alias)| (format!("{}_ID", screaming_snake(id)), alias.clone()));
        tables.chain(keys).collect()
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Creates template.yaml's DynamoDB tables, S3 and S3 Vectors buckets and KMS keys (with their aliases) in the
/// emulator, named for a stack called `stack_name`.
pub async fn provision(config: &SdkConfig, template: &Path, stack_name: &str) -> Result<Resources> {
    let text = std::fs::read_to_string(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let doc: Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("parsing {}", template.display()))?;
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .context("template has no Resources")?;
    let ddb = aws_sdk_dynamodb::Client::new(config);
    let kms = aws_sdk_kms::Client::new(config);
    let mut out = Resources {
        stack_name: stack_name.to_owned(),
        ..Resources::default()
    };
    let mut key_ids = BTreeMap::new();

    let of_type = |wanted: &'static str| {
        resources
            .iter()
            .filter(move |(_, r)| r.get("Type").and_then(Value::as_str) == Some(wanted))
            .map(|(id, r)| (id.as_str().unwrap_or_default().to_owned(), &r["Properties"]))
    };

    for (id, props) in of_type("AWS::DynamoDB::Table") {
        let name = substitute(&props["TableName"], stack_name)
            .with_context(|| format!("{id}: TableName"))?;
        create_table(&ddb, &name, props)
            .await
            .with_context(|| format!("creating table {name}"))?;
        out.tables.insert(id, name);
    }
    let s3 = aws_sdk_s3::Client::new(config);
    for (id, props) in of_type("AWS::S3::Bucket") {
        let name = substitute(&props["BucketName"], stack_name)
            .with_context(|| format!("{id}: BucketName"))?;
        s3.create_bucket()
            .bucket(&name)
            .send()
            .await
            .with_context(|| format!("creating bucket {name}"))?;
        out.buckets.insert(id, name);
    }
    let s3vectors = aws_sdk_s3vectors::Client::new(config);
    for (id, props) in of_type("AWS::S3Vectors::VectorBucket") {
        let name = substitute(&props["VectorBucketName"], stack_name)
            .with_context(|| format!("{id}: VectorBucketName"))?;
        s3vectors
            .create_vector_bucket()
            .vector_bucket_name(&name)
            .send()
            .await
            .with_context(|| format!("creating vector bucket {name}"))?;
        out.buckets.insert(id, name);
    }
    for (id, props) in of_type("AWS::KMS::Key") {
        let description = props["Description"].as_str().unwrap_or(&id).to_owned();
        let key = kms
            .create_key()
            .description(description)
            .send()
            .await
            .with_context(|| format!("creating key {id}"))?;
        let key_id = key
            .key_metadata()
            .map(|m| m.key_id().to_owned())
            .context("CreateKey returned no key id")?;
        key_ids.insert(id, key_id);
    }
    for (id, props) in of_type("AWS::KMS::Alias") {
        let alias = substitute(&props["AliasName"], stack_name)
            .with_context(|| format!("{id}: AliasName"))?;
        let target =
            reference(&props["TargetKeyId"]).with_context(|| format!("{id}: TargetKeyId"))?;
        let key_id = key_ids
            .get(target)
            .with_context(|| format!("{id} targets {target}, which is not a key"))?;
        kms.create_alias()
            .alias_name(&alias)
            .target_key_id(key_id)
            .send()
            .await
            .with_context(|| format!("creating alias {alias}"))?;
        out.key_aliases.insert(target.to_owned(), alias);
    }
    Ok(out)
}

async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str, props: &Value) -> Result<()> {
    let mut req = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for def in props["AttributeDefinitions"]
        .as_sequence()
        .context("AttributeDefinitions")?
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(field(def, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(field(def, "AttributeType")?))
                .build()?,
        );
    }
    req = req.set_key_schema(Some(key_schema(&props["KeySchema"])?));
    for index in props
        .get("LocalSecondaryIndexes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let lsi = LocalSecondaryIndex::builder()
            .index_name(field(index, "IndexName")?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::from(field(
                        &index["Projection"],
                        "ProjectionType",
                    )?))
                    .build(),
            )
            .set_key_schema(Some(key_schema(&index["KeySchema"])?));
        req = req.local_secondary_indexes(lsi.build()?);
    }
    req.send().await?;
    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        ddb.update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(field(ttl, "AttributeName")?)
                    .enabled(ttl["Enabled"].as_bool().unwrap_or(false))
                    .build()?,
            )
            .send()
            .await?;
    }
    Ok(())
}

fn key_schema(v: &Value) -> Result<Vec<KeySchemaElement>> {
    v.as_sequence()
        .context("KeySchema")?
        .iter()
        .map(|key| {
            Ok(KeySchemaElement::builder()
                .attribute_name(field(key, "AttributeName")?)
                .key_type(KeyType::from(field(key, "KeyType")?))
                .build()?)
        })
        .collect()
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a str> {
    v[name].as_str().with_context(|| format!("missing {name}"))
}

/// `!Sub "...${AWS::StackName}..."` (or a plain string) with the stack name, the emulator's
/// account and its region filled in.
fn substitute(v: &Value, stack_name: &str) -> Result<String> {
    let raw = match v {
        Value::String(s) => s.as_str(),
        Value::Tagged(t) if t.tag == "Sub" => t.value.as_str().context("!Sub takes a string")?,
        other => bail!("unsupported value {other:?}"),
    };
    let out = raw
        .replace("${AWS::StackName}", stack_name)
        .replace("${AWS::AccountId}", ACCOUNT_ID)
        .replace("${AWS::Region}", REGION);
    if out.contains("${") {
        bail!("only the stack name, account and region can be substituted locally: {raw}");
    }
    Ok(out)
}

/// For tests: the running emulator (from `AWS_ENDPOINT_URL`) and template.yaml's resources,
/// freshly created for a stack name of their own.
pub async fn fresh_resources() -> (SdkConfig, Resources) {
    let config = emulator_config(&endpoint_from_env("AWS_ENDPOINT_URL")).await;
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let resources = provision(&config, &template, &unique_name("t"))
        .await
        .expect("provisioning template.yaml's resources in the emulator");
    (config, resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_become_configuration_variables() {
        assert_eq!(screaming_snake("TemplatesTable"), "TEMPLATES_TABLE");
        let r = Resources {
            stack_name: "s".into(),
            tables: [("UsageTable".to_owned(), "s-usage".to_owned())].into(),
            key_aliases: [("TemplateKey".to_owned(), "alias/s-templates".to_owned())].into(),
            buckets: [("VectorBucket".to_owned(), "s-vectors".to_owned())].into(),
        };
        assert_eq!(
            r.env(),
            vec![
                ("USAGE_TABLE".to_owned(), "s-usage".to_owned()),
                ("VECTOR_BUCKET".to_owned(), "s-vectors".to_owned()),
                ("TEMPLATE_KEY_ID".to_owned(), "alias/s-templates".to_owned()),
            ]
        );
    }

    #[test]
    fn only_the_stack_account_and_region_are_substituted() {
        let sub: Value = serde_yaml_ng::from_str("!Sub \"${AWS::StackName}-t\"").unwrap();
        assert_eq!(substitute(&sub, "demo").unwrap(), "demo-t");
        let bucket: Value =
            serde_yaml_ng::from_str("!Sub \"${AWS::StackName}-${AWS::AccountId}-${AWS::Region}\"")
                .unwrap();
        assert_eq!(
            substitute(&bucket, "demo").unwrap(),
            format!("demo-{ACCOUNT_ID}-{REGION}")
        );
        let other: Value = serde_yaml_ng::from_str("!Sub \"${AWS::Partition}-t\"").unwrap();
        assert!(substitute(&other, "demo").is_err());
    }
}
