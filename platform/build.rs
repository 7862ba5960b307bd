//! Rebuild when a migration is added or changed: `sqlx::migrate!` embeds `migrations/` at
//! compile time, and Cargo does not otherwise know it depends on that directory.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
