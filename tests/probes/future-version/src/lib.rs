//! A probe built against a future, incompatible `sonde:probe@0.2.0`: the
//! host must refuse it and say which version it targets.

wit_bindgen::generate!({
    inline: "
        package sonde:probe@0.2.0;
        interface log { log: func(message: string); }
        world probe {
            import log;
            export describe: func() -> string;
            export run: func(config: string) -> string;
        }
    ",
});

struct Future;

impl Guest for Future {
    fn describe() -> String {
        "future".into()
    }

    fn run(config: String) -> String {
        sonde::probe::log::log(&config);
        config
    }
}

export!(Future);
