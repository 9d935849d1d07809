//! The one key table: every keyboard shortcut, what it does and its help text. The app reads
//! pressed keys through [`pressed`]; the controls panel shows [`help_text`].

use eframe::egui::{self, Key};

/// What a key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// Pick landmark slot `n` (0-based) and arm it for placing.
    ArmSlot(usize),
    DeleteSlot,
    Undo,
    Redo,
    NextCase,
    PreviousCase,
    ToggleLandmarks,
    /// Cancel a drag or placing.
    Cancel,
    RunModels,
    AcceptHeatmap,
    AcceptSegmentation,
    AcceptSuggestion,
    FrameHeart,
    /// In the pane under the pointer: one slice up (+1) or down (-1).
    Slice(i8),
    /// Maximise the pane under the pointer (or show all panes again).
    Maximise,
    /// Turn the three planes about the normal of the pane under the pointer (degrees).
    Turn(i8),
    /// Move the active landmark along the pane's screen axes (right, down), 0.5 mm a step or
    /// 2 mm when `coarse`.
    Nudge {
        right: i8,
        down: i8,
        coarse: bool,
    },
}

/// Whether a modifier must be held, must not be, or does not matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Yes,
    No,
    Any,
}

impl Need {
    fn ok(self, held: bool) -> bool {
        match self {
            Need::Yes => held,
            Need::No => !held,
            Need::Any => true,
        }
    }
}

/// Modifiers of a binding: command (Ctrl, or ⌘ on macOS), shift, alt.
#[derive(Clone, Copy, Debug)]
struct Mods {
    command: Need,
    shift: Need,
    alt: Need,
}

const ANY: Mods = Mods {
    command: Need::Any,
    shift: Need::Any,
    alt: Need::Any,
};
const NO_COMMAND: Mods = Mods {
    command: Need::No,
    ..ANY
};
const NO_ALT: Mods = Mods {
    alt: Need::No,
    ..ANY
};
const PLAIN: Mods = Mods {
    command: Need::No,
    shift: Need::No,
    alt: Need::No,
};

/// Which keys reach a binding: every frame, or only while the pointer is over a pane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Window,
    Pane,
}

struct Binding {
    keys: &'static [Key],
    mods: Mods,
    scope: Scope,
    action: KeyAction,
    help: &'static str,
}

const DIGITS: [Key; 9] = [
    Key::Num1,
    Key::Num2,
    Key::Num3,
    Key::Num4,
    Key::Num5,
    Key::Num6,
    Key::Num7,
    Key::Num8,
    Key::Num9,
];

/// Alt+arrow (Shift: coarse) nudging the active landmark along the pane's axes.
const fn nudge(
    keys: &'static [Key],
    right: i8,
    down: i8,
    coarse: bool,
    help: &'static str,
) -> Binding {
    Binding {
        keys,
        mods: Mods {
            command: Need::Any,
            shift: if coarse { Need::Yes } else { Need::No },
            alt: Need::Yes,
        },
        scope: Scope::Pane,
        action: KeyAction::Nudge {
            right,
            down,
            coarse,
        },
        help,
    }
}

/// Every shortcut. Slot keys 1..9 come from [`DIGITS`] and are listed once in the help.
const BINDINGS: &[Binding] = &[
    Binding {
        keys: &[Key::Escape],
        mods: ANY,
        scope: Scope::Window,
        action: KeyAction::Cancel,
        help: "Esc: cancel drag or placing",
    },
    Binding {
        keys: &[Key::Delete, Key::Backspace],
        mods: ANY,
        scope: Scope::Window,
        action: KeyAction::DeleteSlot,
        help: "Delete: clear the landmark",
    },
    Binding {
        keys: &[Key::Z],
        mods: Mods {
            command: Need::Yes,
            shift: Need::No,
            alt: Need::Any,
        },
        scope: Scope::Window,
        action: KeyAction::Undo,
        help: "Ctrl+Z: undo",
    },
    Binding {
        keys: &[Key::Z],
        mods: Mods {
            command: Need::Yes,
            shift: Need::Yes,
            alt: Need::Any,
        },
        scope: Scope::Window,
        action: KeyAction::Redo,
        help: "Ctrl+Shift+Z or Ctrl+Y: redo",
    },
    Binding {
        keys: &[Key::Y],
        mods: Mods {
            command: Need::Yes,
            ..ANY
        },
        scope: Scope::Window,
        action: KeyAction::Redo,
        help: "",
    },
    Binding {
        keys: &[Key::O],
        mods: NO_COMMAND,
        scope: Scope::Window,
        action: KeyAction::ToggleLandmarks,
        help: "O: landmarks on/off",
    },
    Binding {
        keys: &[Key::N],
        mods: NO_COMMAND,
        scope: Scope::Window,
        action: KeyAction::NextCase,
        help: "N / P: next / previous case",
    },
    Binding {
        keys: &[Key::P],
        mods: NO_COMMAND,
        scope: Scope::Window,
        action: KeyAction::PreviousCase,
        help: "",
    },
    Binding {
        keys: &[Key::R],
        mods: PLAIN,
        scope: Scope::Window,
        action: KeyAction::RunModels,
        help: "R: run the models",
    },
    Binding {
        keys: &[Key::A],
        mods: PLAIN,
        scope: Scope::Window,
        action: KeyAction::AcceptHeatmap,
        help: "A / Shift+A: accept the heatmap / segmentation centre",
    },
    Binding {
        keys: &[Key::A],
        mods: Mods {
            shift: Need::Yes,
            ..PLAIN
        },
        scope: Scope::Window,
        action: KeyAction::AcceptSegmentation,
        help: "",
    },
    Binding {
        keys: &[Key::G],
        mods: PLAIN,
        scope: Scope::Window,
        action: KeyAction::AcceptSuggestion,
        help: "G: accept the landmark model's suggestion",
    },
    Binding {
        keys: &[Key::F],
        mods: Mods {
            shift: Need::Any,
            ..PLAIN
        },
        scope: Scope::Window,
        action: KeyAction::FrameHeart,
        help: "F: frame the heart",
    },
    Binding {
        keys: &[Key::ArrowUp, Key::PageUp],
        mods: NO_ALT,
        scope: Scope::Pane,
        action: KeyAction::Slice(1),
        help: "Up/Down or PgUp/PgDn: slice",
    },
    Binding {
        keys: &[Key::ArrowDown, Key::PageDown],
        mods: NO_ALT,
        scope: Scope::Pane,
        action: KeyAction::Slice(-1),
        help: "",
    },
    Binding {
        keys: &[Key::M],
        mods: ANY,
        scope: Scope::Pane,
        action: KeyAction::Maximise,
        help: "M: maximise pane",
    },
    Binding {
        keys: &[Key::OpenBracket],
        mods: ANY,
        scope: Scope::Pane,
        action: KeyAction::Turn(-5),
        help: "[ / ]: turn the planes 5° about this pane's normal (oblique)",
    },
    Binding {
        keys: &[Key::CloseBracket],
        mods: ANY,
        scope: Scope::Pane,
        action: KeyAction::Turn(5),
        help: "",
    },
    nudge(
        &[Key::ArrowLeft],
        -1,
        0,
        false,
        "Alt+arrows: nudge the active landmark 0.5 mm (Shift: 2 mm)",
    ),
    nudge(&[Key::ArrowLeft], -1, 0, true, ""),
    nudge(&[Key::ArrowRight], 1, 0, false, ""),
    nudge(&[Key::ArrowRight], 1, 0, true, ""),
    nudge(&[Key::ArrowUp], 0, -1, false, ""),
    nudge(&[Key::ArrowUp], 0, -1, true, ""),
    nudge(&[Key::ArrowDown], 0, 1, false, ""),
    nudge(&[Key::ArrowDown], 0, 1, true, ""),
];

/// Mouse gestures, shown before the keys.
const MOUSE_HELP: &str = "Left: crosshair · wheel: slice · Ctrl+wheel: zoom · middle: pan · \
                          right: window/level";

/// The actions of the keys pressed this frame in `scope`, in table order (slot keys first).
pub fn pressed(input: &egui::InputState, scope: Scope) -> Vec<KeyAction> {
    let m = input.modifiers;
    let held = |mods: Mods| {
        mods.command.ok(m.command || m.ctrl) && mods.shift.ok(m.shift) && mods.alt.ok(m.alt)
    };
    let mut actions = Vec::new();
    if scope == Scope::Window {
        for (n, key) in DIGITS.iter().enumerate() {
            if input.key_pressed(*key) {
                actions.push(KeyAction::ArmSlot(n));
            }
        }
    }
    for b in BINDINGS.iter().filter(|b| b.scope == scope) {
        if held(b.mods)
            && b.keys.iter().any(|k| input.key_pressed(*k))
            && !actions.contains(&b.action)
        {
            actions.push(b.action);
        }
    }
    actions
}

/// The help line of the slice panes (mouse and pane keys).
pub fn pane_help() -> String {
    let keys: Vec<&str> = BINDINGS
        .iter()
        .filter(|b| b.scope == Scope::Pane && !b.help.is_empty())
        .map(|b| b.help)
        .collect();
    format!("{MOUSE_HELP} · {}", keys.join(" · "))
}

/// The help of the keys that work anywhere in the window.
pub fn window_help() -> String {
    let mut keys = vec!["1–9: pick and place a landmark"];
    keys.extend(
        BINDINGS
            .iter()
            .filter(|b| b.scope == Scope::Window && !b.help.is_empty())
            .map(|b| b.help),
    );
    keys.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(key: Key, modifiers: egui::Modifiers) -> egui::InputState {
        let raw = egui::RawInput {
            events: vec![
                egui::Event::ModifiersChanged(modifiers),
                egui::Event::Key {
                    key,
                    physical_key: None,
                    pressed: true,
                    repeat: false,
                    modifiers,
                },
            ],
            ..Default::default()
        };
        egui::InputState::default().begin_pass(raw, false, 1.0, egui::InputOptions::default())
    }

    #[test]
    fn modifiers_pick_the_binding() {
        let none = egui::Modifiers::NONE;
        let at = |k, m| pressed(&input(k, m), Scope::Window);
        assert_eq!(at(Key::Z, egui::Modifiers::COMMAND), vec![KeyAction::Undo]);
        assert_eq!(
            at(Key::Z, egui::Modifiers::COMMAND | egui::Modifiers::SHIFT),
            vec![KeyAction::Redo]
        );
        assert_eq!(at(Key::Z, none), vec![]);
        assert_eq!(at(Key::A, none), vec![KeyAction::AcceptHeatmap]);
        assert_eq!(
            at(Key::A, egui::Modifiers::SHIFT),
            vec![KeyAction::AcceptSegmentation]
        );
        assert_eq!(at(Key::R, egui::Modifiers::CTRL), vec![]);
        assert_eq!(at(Key::Num3, none), vec![KeyAction::ArmSlot(2)]);
        // Pane keys only reach the pane scope.
        assert_eq!(at(Key::M, none), vec![]);
        assert_eq!(
            pressed(&input(Key::PageDown, none), Scope::Pane),
            vec![KeyAction::Slice(-1)]
        );
        let nudge = |m| pressed(&input(Key::ArrowUp, m), Scope::Pane);
        let up = |coarse| KeyAction::Nudge {
            right: 0,
            down: -1,
            coarse,
        };
        assert_eq!(nudge(egui::Modifiers::ALT), vec![up(false)]);
        assert_eq!(
            nudge(egui::Modifiers::ALT | egui::Modifiers::SHIFT),
            vec![up(true)]
        );
        assert_eq!(nudge(none), vec![KeyAction::Slice(1)]);
    }

    #[test]
    fn help_comes_from_the_table() {
        assert!(pane_help().starts_with(
            "Left: crosshair · wheel: slice · Ctrl+wheel: zoom · middle: pan · right: \
             window/level · Up/Down or PgUp/PgDn: slice · M: maximise pane"
        ));
        for b in BINDINGS.iter().filter(|b| !b.help.is_empty()) {
            assert!(window_help().contains(b.help) || pane_help().contains(b.help));
        }
    }
}
