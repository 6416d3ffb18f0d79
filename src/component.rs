//! The stack's members: one place that maps a component to its unit, its names and its role.
//!
//! Everything else in the crate speaks of [`Component`] and the constants here, never of unit-name
//! strings, so that renaming a unit is a change to this file and to `units/` only.

use std::fmt;
use std::str::FromStr;

/// The target that groups the whole stack (`systemctl start imageserving.target`).
pub const TARGET: &str = "imageserving.target";
/// The Server Supervisor's unit.
pub const SUPERVISOR: &str = "imageserving-supervisor.service";

/// One Image Serving component that the supervisor watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// `ps`: the Tomcat-hosted Platform Server.
    Platform,
    /// `is`: the native Image Server.
    Image,
    /// `svg`: the SVG rendering server.
    Svg,
}

impl Component {
    /// Every component, in the order operators read them (the original status order).
    pub const ALL: [Component; 3] = [Component::Platform, Component::Image, Component::Svg];

    /// The short name used on the command line and in JSON (`ps`, `is`, `svg`).
    pub fn short_name(self) -> &'static str {
        match self {
            Component::Platform => "ps",
            Component::Image => "is",
            Component::Svg => "svg",
        }
    }

    /// The long alias accepted on the command line.
    pub fn long_name(self) -> &'static str {
        match self {
            Component::Platform => "platform",
            Component::Image => "image",
            Component::Svg => "svg",
        }
    }

    /// The name an operator knows the component by.
    pub fn title(self) -> &'static str {
        match self {
            Component::Platform => "Platform Server",
            Component::Image => "Image Server",
            Component::Svg => "SVG Server",
        }
    }

    /// The systemd unit that runs the component.
    pub fn unit(self) -> &'static str {
        match self {
            Component::Platform => "imageserving-platform.service",
            Component::Image => "imageserving-image.service",
            Component::Svg => "imageserving-svg.service",
        }
    }

    /// The socket unit that can hold the component's listening port (off unless enabled).
    pub fn socket(self) -> &'static str {
        match self {
            Component::Platform => "imageserving-platform.socket",
            Component::Image => "imageserving-image.socket",
            Component::Svg => "imageserving-svg.socket",
        }
    }

    /// The component whose unit is `unit`, if any.
    pub fn from_unit(unit: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.unit() == unit)
    }

    /// The names accepted on the command line, for usage messages.
    pub fn valid_names() -> &'static str {
        "ps (platform), is (image), svg"
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

/// A name that is not a component.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown component '{0}': expected one of {valid}", valid = Component::valid_names())]
pub struct UnknownComponent(pub String);

impl FromStr for Component {
    type Err = UnknownComponent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Component::ALL
            .into_iter()
            .find(|c| lower == c.short_name() || lower == c.long_name() || lower == c.unit())
            .ok_or_else(|| UnknownComponent(s.to_owned()))
    }
}

/// A member of the stack named on the command line: a component, or the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// The Server Supervisor (`supervisor`).
    Supervisor,
    /// A component.
    Component(Component),
}

impl Member {
    /// Its unit.
    pub fn unit(self) -> &'static str {
        match self {
            Member::Supervisor => SUPERVISOR,
            Member::Component(c) => c.unit(),
        }
    }

    /// The member whose unit is `unit`, if any.
    pub fn from_unit(unit: &str) -> Option<Member> {
        if unit == SUPERVISOR {
            return Some(Member::Supervisor);
        }
        Component::from_unit(unit).map(Member::Component)
    }

    /// Its short name: `ps`, `is`, `svg` or `supervisor`.
    pub fn label(self) -> &'static str {
        match self {
            Member::Supervisor => "supervisor",
            Member::Component(c) => c.short_name(),
        }
    }
}

/// The short name of a unit of the stack (`svg`, `supervisor`), or the unit's own name.
pub fn label_of(unit: &str) -> &str {
    match Member::from_unit(unit) {
        Some(m) => m.label(),
        None if unit == TARGET => "the target",
        None => unit,
    }
}

/// A name that is neither a component nor the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown name '{0}': expected one of {valid}, supervisor", valid = Component::valid_names())]
pub struct UnknownMember(pub String);

impl FromStr for Member {
    type Err = UnknownMember;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("supervisor") || s == SUPERVISOR {
            return Ok(Member::Supervisor);
        }
        s.parse()
            .map(Member::Component)
            .map_err(|_| UnknownMember(s.to_owned()))
    }
}

/// Every unit of the stack: the supervisor first, then the components.
pub fn stack_units() -> impl Iterator<Item = &'static str> {
    std::iter::once(SUPERVISOR).chain(Component::ALL.into_iter().map(Component::unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_unit_names_parse() {
        for c in Component::ALL {
            assert_eq!(c.short_name().parse::<Component>(), Ok(c));
            assert_eq!(c.long_name().parse::<Component>(), Ok(c));
            assert_eq!(c.unit().parse::<Component>(), Ok(c));
            assert_eq!(c.short_name().to_uppercase().parse::<Component>(), Ok(c));
            assert_eq!(Component::from_unit(c.unit()), Some(c));
        }
    }

    #[test]
    fn unknown_name_lists_valid_ones() {
        let err = "tomcat".parse::<Component>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown component 'tomcat': expected one of ps (platform), is (image), svg"
        );
    }

    #[test]
    fn stack_units_are_distinct() {
        let mut units: Vec<_> = stack_units().collect();
        units.sort_unstable();
        units.dedup();
        assert_eq!(units.len(), 4);
    }
}
