//! retrieve-context's configuration, from the environment.

use promptseal::env::{Env, EnvError};

/// Who the function serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosting {
    /// In the ISV's account, called by invoke: tenants from the registry, the collections a tenant
    /// may read from the template version it uses.
    Isv {
        tenants_table: String,
        templates_table: String,
    },
    /// In one tenant's own account (`HOSTED_TENANT_ID`): that tenant only, its own collections
    /// only.
    Tenant { tenant_id: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub context_table: String,
    pub vector_bucket: String,
    /// The S3 Vectors bucket (name or ARN) of collections kept there, if there are any.
    pub vector_index_bucket: Option<String>,
    pub vector_key_id: String,
    pub hosting: Hosting,
}

impl Config {
    pub fn read(env: &Env<impl Fn(&str) -> Option<String>>) -> Result<Self, EnvError> {
        let hosting = match env.optional("HOSTED_TENANT_ID") {
            Some(tenant_id) if promptseal::template::is_id(&tenant_id) => {
                Hosting::Tenant { tenant_id }
            }
            Some(_) => {
                return Err(EnvError::invalid(
                    "HOSTED_TENANT_ID",
                    "a tenant id is 1 to 64 letters, digits, '.', '_' or '-'",
                ));
            }
            None => Hosting::Isv {
                tenants_table: env.required("TENANTS_TABLE")?,
                templates_table: env.required("TEMPLATES_TABLE")?,
            },
        };
        Ok(Self {
            context_table: env.required("CONTEXT_TABLE")?,
            vector_bucket: env.required("VECTOR_BUCKET")?,
            vector_index_bucket: env.optional("VECTOR_INDEX_BUCKET"),
            vector_key_id: env.required("VECTOR_KEY_ID")?,
            hosting,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &'static [(&str, &str)]) -> Result<Config, EnvError> {
        Config::read(&Env::new(|name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }))
    }

    const STORE: [(&str, &str); 3] = [
        ("CONTEXT_TABLE", "c"),
        ("VECTOR_BUCKET", "b"),
        ("VECTOR_KEY_ID", "alias/v"),
    ];

    #[test]
    fn the_hosting_follows_hosted_tenant_id() {
        let isv: &'static [(&str, &str)] = Box::leak(Box::new(
            [
                &STORE[..],
                &[("TENANTS_TABLE", "t"), ("TEMPLATES_TABLE", "p")][..],
            ]
            .concat(),
        ));
        assert!(matches!(read(isv).unwrap().hosting, Hosting::Isv { .. }));
        let tenant: &'static [(&str, &str)] = Box::leak(Box::new(
            [&STORE[..], &[("HOSTED_TENANT_ID", "acme")][..]].concat(),
        ));
        assert_eq!(
            read(tenant).unwrap().hosting,
            Hosting::Tenant {
                tenant_id: "acme".into()
            }
        );
        // ISV-hosted without the registry and templates: refused at cold start.
        assert_eq!(read(&STORE), Err(EnvError::Missing("TENANTS_TABLE")));
        let bad: &'static [(&str, &str)] = Box::leak(Box::new(
            [&STORE[..], &[("HOSTED_TENANT_ID", "acme/../x")][..]].concat(),
        ));
        assert!(matches!(read(bad), Err(EnvError::Invalid { .. })));
    }
}
