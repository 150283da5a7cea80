// The token pages' one script: the copy button beside a new token. The
// pages work without it (the field can be selected and copied by hand).
document.querySelectorAll('button[data-copy]').forEach((button) => {
  button.addEventListener('click', async () => {
    const field = document.getElementById(button.dataset.copy);
    const status = button.parentElement.querySelector('.copied');
    try {
      await navigator.clipboard.writeText(field.value);
      status.textContent = 'Copied.';
    } catch {
      field.select();
      status.textContent = 'Selected: press Ctrl+C to copy.';
    }
  });
});
