//! `ledger account`: open, read, freeze, unfreeze and close accounts.

use clap::Subcommand;
use ledger_client::proto as pb;
use serde_json::json;

use super::Context;
use super::output;

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Open an account.
    Create {
        id: String,
        #[arg(long)]
        currency: String,
        /// Debits may not exceed credits (plus the overdraft limit).
        #[arg(long)]
        debits_must_not_exceed_credits: bool,
        /// Credits may not exceed debits.
        #[arg(long)]
        credits_must_not_exceed_debits: bool,
        #[arg(long)]
        overdraft_limit: Option<String>,
        #[arg(long, default_value_t = 0)]
        code: u32,
        #[arg(long)]
        holder_name: Option<String>,
        #[arg(long)]
        national_id: Option<String>,
        #[arg(long)]
        card_number: Option<String>,
    },
    /// Read accounts.
    Get {
        ids: Vec<String>,
        /// Read this node's applied state instead of a linearizable read.
        #[arg(long)]
        local: bool,
    },
    Freeze {
        id: String,
    },
    Unfreeze {
        id: String,
    },
    Close {
        id: String,
    },
}

pub async fn run(context: &Context, cmd: &AccountCmd) -> anyhow::Result<i32> {
    let client = &context.client;
    match cmd {
        AccountCmd::Create {
            id,
            currency,
            debits_must_not_exceed_credits,
            credits_must_not_exceed_debits,
            overdraft_limit,
            code,
            holder_name,
            national_id,
            card_number,
        } => {
            let account = pb::NewAccount {
                id: id.clone(),
                currency: currency.clone(),
                flags: Some(pb::AccountFlags {
                    debits_must_not_exceed_credits: *debits_must_not_exceed_credits,
                    credits_must_not_exceed_debits: *credits_must_not_exceed_debits,
                }),
                overdraft_limit: overdraft_limit.clone().unwrap_or_default(),
                code: *code,
                personal_data: Some(pb::PersonalData {
                    holder_name: holder_name.clone(),
                    national_id: national_id.clone(),
                    card_number: card_number.clone(),
                }),
            };
            let response = client.create_accounts(vec![account]).await?;
            Ok(output::exit_status(output::print_results(context.json, &response.results, response.commit.as_ref())))
        }
        AccountCmd::Get { ids, local } => {
            let consistency = if *local { pb::ReadConsistency::Local } else { pb::ReadConsistency::Linearizable };
            let response = client.lookup_accounts(ids.clone(), consistency).await?;
            if context.json {
                let accounts: Vec<_> = response.accounts.iter().map(output::account_json).collect();
                println!("{}", json!({"accounts": accounts, "not_found": response.not_found}));
            } else {
                for a in &response.accounts {
                    println!("{}", serde_json::to_string_pretty(&output::account_json(a))?);
                }
                for id in &response.not_found {
                    println!("{id}: not found");
                }
            }
            Ok(output::exit_status(response.not_found.is_empty()))
        }
        AccountCmd::Freeze { id } | AccountCmd::Unfreeze { id } | AccountCmd::Close { id } => {
            let action = match cmd {
                AccountCmd::Freeze { .. } => pb::AccountAction::Freeze,
                AccountCmd::Unfreeze { .. } => pb::AccountAction::Unfreeze,
                _ => pb::AccountAction::Close,
            };
            let response =
                client.update_accounts(vec![pb::AccountUpdate { id: id.clone(), action: action as i32 }]).await?;
            Ok(output::exit_status(output::print_results(context.json, &response.results, response.commit.as_ref())))
        }
    }
}
