# Run by `cmake --install` (install(SCRIPT) in CMakeLists.txt): writes
# the systemd unit and the man pages with the paths of this install.
# CMAKE_INSTALL_PREFIX here is the install's prefix, --prefix included,
# which configure time cannot know.

function(fod_full out rel)
  if(IS_ABSOLUTE "${rel}")
    set(${out} "${rel}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${rel}" PARENT_SCOPE)
  endif()
endfunction()

fod_full(FOD_SBINDIR "${FOD_SBINDIR_REL}")
fod_full(sysconfdir "${FOD_SYSCONFDIR_REL}")
fod_full(mandir "${FOD_MANDIR_REL}")
set(FOD_PATH_CONFIG "${sysconfdir}/failoverd/failoverd.conf")

set(unitdir "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
message(STATUS "Installing: ${unitdir}/failoverd.service")
configure_file("${FOD_SRC}/systemd/failoverd.service.in"
    "${unitdir}/failoverd.service" @ONLY)

# The man pages are written for the usual paths (/etc, /var/lib, /run);
# they say the ones failoverd was built with, by which -c, state_dir and
# control_socket default.
foreach(page failoverd.8 failoverctl.8 failoverd.conf.5)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" sec "${page}")
  file(READ "${FOD_SRC}/man/${page}" text)
  string(REPLACE "/etc/failoverd/failoverd.conf" "${FOD_PATH_CONFIG_BUILT}"
      text "${text}")
  string(REPLACE "/run/failoverd/control.sock" "${FOD_PATH_CONTROL_SOCKET}"
      text "${text}")
  string(REPLACE "/var/lib/failoverd" "${FOD_PATH_STATE_DIR}"
      text "${text}")
  set(dest "$ENV{DESTDIR}${mandir}/man${sec}")
  message(STATUS "Installing: ${dest}/${page}")
  file(MAKE_DIRECTORY "${dest}")
  file(WRITE "${dest}/${page}" "${text}")
endforeach()
