//! The process a container runs: `command`/`args` against the image's
//! Entrypoint/Cmd (the rule containerd/CRI-O apply, documented in
//! "Define a Command and Arguments for a Container"), with `$(VAR)` expanded
//! against the container's env (ExpandContainerCommandAndArgs).
//!
//! | command | args | runs                          |
//! |---------|------|-------------------------------|
//! | set     | any  | command + args (image ignored) |
//! | unset   | set  | image Entrypoint + args       |
//! | unset   | unset| image Entrypoint + image Cmd  |

use crate::env::expand_with;
use std::collections::HashMap;

/// Why no process could be determined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("container {container:?}: no command specified: the pod sets neither command nor args and the image has no Entrypoint or Cmd")]
    Empty { container: String },
}

/// Builds argv. `env` is the container's resolved env (name, value).
pub fn container_argv(
    container: &str,
    command: Option<&[String]>,
    args: Option<&[String]>,
    image_entrypoint: &[String],
    image_cmd: &[String],
    env: &[(String, String)],
) -> Result<Vec<String>, CommandError> {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let exp = |v: &[String]| v.iter().map(|s| expand_with(s, &vars)).collect::<Vec<_>>();
    let command = command.filter(|c| !c.is_empty());
    let args = args.filter(|a| !a.is_empty());
    let argv = match (command, args) {
        (Some(c), a) => {
            let mut v = exp(c);
            v.extend(exp(a.unwrap_or(&[])));
            v
        }
        (None, Some(a)) => {
            let mut v = image_entrypoint.to_vec();
            v.extend(exp(a));
            v
        }
        (None, None) => {
            let mut v = image_entrypoint.to_vec();
            v.extend(image_cmd.iter().cloned());
            v
        }
    };
    if argv.is_empty() {
        return Err(CommandError::Empty {
            container: container.into(),
        });
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_four_cases() {
        let ep = v(&["/docker-entrypoint.sh"]);
        let cmd = v(&["nginx", "-g", "daemon off;"]);
        let c = v(&["/bin/echo"]);
        let a = v(&["hi"]);
        assert_eq!(
            container_argv("x", None, None, &ep, &cmd, &[]).unwrap(),
            v(&["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"])
        );
        assert_eq!(
            container_argv("x", Some(&c), None, &ep, &cmd, &[]).unwrap(),
            v(&["/bin/echo"])
        );
        assert_eq!(
            container_argv("x", None, Some(&a), &ep, &cmd, &[]).unwrap(),
            v(&["/docker-entrypoint.sh", "hi"])
        );
        assert_eq!(
            container_argv("x", Some(&c), Some(&a), &ep, &cmd, &[]).unwrap(),
            v(&["/bin/echo", "hi"])
        );
        // Args alone with an image that has no Entrypoint: args are the argv.
        assert_eq!(
            container_argv("x", None, Some(&a), &[], &cmd, &[]).unwrap(),
            v(&["hi"])
        );
    }

    #[test]
    fn empty_lists_count_as_unset() {
        let cmd = v(&["sh"]);
        assert_eq!(
            container_argv("x", Some(&[]), Some(&[]), &[], &cmd, &[]).unwrap(),
            v(&["sh"])
        );
    }

    #[test]
    fn expansion_uses_env_but_not_image_values() {
        let env = vec![("MSG".to_string(), "hello".to_string())];
        let c = v(&["echo", "$(MSG)", "$$(MSG)", "$(NOPE)"]);
        assert_eq!(
            container_argv("x", Some(&c), None, &[], &[], &env).unwrap(),
            v(&["echo", "hello", "$(MSG)", "$(NOPE)"])
        );
        // Image Entrypoint/Cmd are not expanded.
        let cmd = v(&["echo", "$(MSG)"]);
        assert_eq!(
            container_argv("x", None, None, &[], &cmd, &env).unwrap(),
            cmd
        );
    }

    #[test]
    fn nothing_to_run() {
        let e = container_argv("web", None, None, &[], &[], &[]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("container \"web\": no command specified"),
            "{e}"
        );
    }
}
