//! The tamperer the verifier must catch: a superuser who writes past the
//! append-only triggers (`session_replication_role = replica`), and a
//! careful one who also recomputes the hash chain after an edit.

use std::fmt::Display;

use crate::TestDatabase;

impl TestDatabase {
    /// Runs `sql` as a superuser with the append-only triggers switched off.
    pub async fn as_superuser(&self, sql: &str) {
        let client = self.connect().await.expect("connect");
        client
            .batch_execute(&format!("set session_replication_role = replica;\n{sql}"))
            .await
            .unwrap_or_else(|err| panic!("tamper as superuser: {err:?}\n{sql}"));
    }

    /// Edits transfer `id` as a superuser: `assignment` is the `set` list of
    /// an SQL update (`amount = 3.00`). Its row hash no longer matches.
    pub async fn edit_transfer(&self, id: impl Display, assignment: &str) {
        self.as_superuser(&edit_sql(id, assignment)).await;
    }

    /// [`TestDatabase::edit_transfer`], and then, like a careful tamperer,
    /// recomputes the hash of the edited row and of every later row of its
    /// chain, so that the hash chains agree again (the journal tree, built
    /// from the hashes before, does not).
    pub async fn edit_transfer_and_rechain(&self, id: impl Display, assignment: &str) {
        let edit = edit_sql(&id, assignment);
        self.as_superuser(&format!(
            "{edit}
             do $$
             declare
                 r record;
                 previous bytea;
             begin
                 for r in select t.source_account_id, t.source_seq
                            from ledger.transfers t
                            join ledger.transfers v
                              on v.source_account_id = t.source_account_id
                           where v.transfer_id = '{id}' and t.source_seq >= v.source_seq
                           order by t.source_seq loop
                     previous := coalesce(
                         (select p.row_hash from ledger.transfers p
                           where p.source_account_id = r.source_account_id
                             and p.source_seq = r.source_seq - 1),
                         decode(repeat('00', 32), 'hex'));
                     update ledger.transfers t
                        set row_hash = sha256(previous || convert_to(ledger.transfer_encoding(t), 'UTF8'))
                      where t.source_account_id = r.source_account_id
                        and t.source_seq = r.source_seq;
                 end loop;
             end;
             $$;"
        ))
        .await;
    }
}

fn edit_sql(id: impl Display, assignment: &str) -> String {
    format!("update ledger.transfers set {assignment} where transfer_id = '{id}';")
}
