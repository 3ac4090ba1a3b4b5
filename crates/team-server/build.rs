fn main() {
    // The team database's migrations are embedded (sqlx::migrate!): a new one rebuilds.
    println!("cargo:rerun-if-changed=../../migrations/team");
}
