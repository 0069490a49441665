/// mimalloc instead of the system allocator: a request allocates and frees many small
/// buffers (decoded strings, response messages), and glibc's malloc/free was ~17% of
/// the daemon's CPU under BatchCheck load (see benches/README.md, "allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    warden::cli::main()
}
