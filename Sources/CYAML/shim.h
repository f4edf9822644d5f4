/* libyaml (Debian libyaml-dev): the YAML parser behind Corral's configuration reader. */
#include <yaml.h>
