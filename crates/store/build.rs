fn main() {
    // The migrations are embedded (sqlx::migrate!): a new one rebuilds the store.
    println!("cargo:rerun-if-changed=../../migrations");
}
