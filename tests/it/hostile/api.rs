//! A hostile Network Edge API through `sshfleet equinix ssh-users list`.
