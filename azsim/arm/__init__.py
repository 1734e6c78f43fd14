"""The ARM front: routes as data, thin handlers, and the HTTPS server that ties them to the backend."""
