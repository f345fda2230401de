//! A valid component for another WIT world: the host must refuse it with a
//! clear error, not try to run it.

wit_bindgen::generate!({
    inline: "
        package acme:greeter@1.0.0;
        interface names { name: func() -> string; }
        world greeter {
            import names;
            export greet: func(who: string) -> string;
        }
    ",
});

struct Greeter;

impl Guest for Greeter {
    fn greet(who: String) -> String {
        format!("hello {who}, I am {}", acme::greeter::names::name())
    }
}

export!(Greeter);
