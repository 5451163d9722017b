#if !FUZZING
@main
struct FuzzSignalMain {
    static func main() {}
}
#endif
